package agent

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gogo/protobuf/proto"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// errEventInvalid marks an event that decoded but lacks what its type needs.
var errEventInvalid = errors.New("invalid event")

// eventDecoder turns one RecordIO frame into an event in one wire format.
type eventDecoder func(frame []byte) (*executor.Event, error)

// decoderFor returns the decoder of a stream's media type, or nil.
func decoderFor(mediaType string) eventDecoder {
	switch mediaType {
	case ContentTypeProtobuf:
		return decodeProtobufEvent
	case ContentTypeJSON:
		return decodeJSONEvent
	}
	return nil
}

func decodeProtobufEvent(frame []byte) (*executor.Event, error) {
	ev := new(executor.Event)
	if err := proto.Unmarshal(frame, ev); err != nil {
		return nil, fmt.Errorf("decode protobuf event: %w", err)
	}
	return ev, validateEvent(ev)
}

func decodeJSONEvent(frame []byte) (*executor.Event, error) {
	ev := new(executor.Event)
	if err := json.Unmarshal(frame, ev); err != nil {
		return nil, fmt.Errorf("decode JSON event: %w", err)
	}
	return ev, validateEvent(ev)
}

// validateEvent checks that an event carries what its type needs before the
// link or the task manager touches it. Protobuf enforces required fields only
// inside a payload that is present ("08 02" is a LAUNCH without its launch)
// and JSON enforces none, so a broken or hostile agent (or anything between
// it and the executor) could otherwise hand the task manager a nil payload or
// a task without an id. The returned error wraps errEventInvalid and names
// what is missing; the event itself is still returned for logging.
func validateEvent(ev *executor.Event) error {
	missing := func(what string) error {
		return fmt.Errorf("%w: %s event without %s", errEventInvalid, ev.GetType(), what)
	}
	switch ev.GetType() {
	case executor.Event_SUBSCRIBED:
		s := ev.GetSubscribed()
		switch {
		case s == nil:
			return missing("subscribed")
		case s.ExecutorInfo.ExecutorID.Value == "":
			return missing("subscribed.executor_info.executor_id")
		}
	case executor.Event_LAUNCH:
		l := ev.GetLaunch()
		switch {
		case l == nil:
			return missing("launch")
		case l.Task.TaskID.Value == "":
			return missing("launch.task.task_id")
		}
	case executor.Event_LAUNCH_GROUP:
		l := ev.GetLaunchGroup()
		switch {
		case l == nil:
			return missing("launch_group")
		case len(l.TaskGroup.Tasks) == 0:
			return missing("launch_group.task_group.tasks")
		}
		for i := range l.TaskGroup.Tasks {
			if l.TaskGroup.Tasks[i].TaskID.Value == "" {
				return missing(fmt.Sprintf("launch_group.task_group.tasks[%d].task_id", i))
			}
		}
	case executor.Event_KILL:
		k := ev.GetKill()
		switch {
		case k == nil:
			return missing("kill")
		case k.TaskID.Value == "":
			return missing("kill.task_id")
		}
	case executor.Event_ACKNOWLEDGED:
		a := ev.GetAcknowledged()
		switch {
		case a == nil:
			return missing("acknowledged")
		case a.TaskID.Value == "":
			return missing("acknowledged.task_id")
		case len(a.UUID) == 0:
			return missing("acknowledged.uuid")
		}
	case executor.Event_MESSAGE:
		if ev.GetMessage() == nil {
			return missing("message")
		}
	case executor.Event_ERROR:
		if ev.GetError() == nil {
			return missing("error")
		}
	}
	return nil
}
