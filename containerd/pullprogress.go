package containerd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/docker/docker/pkg/jsonmessage"
)

// PullInfo is one image pull in progress, for /state, `executor status` and
// /metrics.
type PullInfo struct {
	// Image is the normalised reference being pulled, e.g.
	// "registry.example.com/web:1.4" or "docker.io/library/busybox:latest".
	Image string `json:"image"`
	// TaskIDs are the tasks waiting for this pull, in arrival order ("" for
	// a caller that gave no task id is left out).
	TaskIDs []string `json:"task_ids"`
	// Waiters counts every caller waiting, with or without a task id.
	Waiters int `json:"waiters"`
	// BytesDone and BytesTotal sum the layers' download progress; the total
	// grows as the daemon learns layer sizes, and layers already present
	// locally count in neither.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	// Layers is how many layers the daemon has reported so far.
	Layers       int       `json:"layers"`
	StartedAt    time.Time `json:"started_at"`
	LastProgress time.Time `json:"last_progress"`
	// Status is the daemon's last status line, e.g. "Downloading".
	Status string `json:"status,omitempty"`
}

// layerProgress is one layer's download as the daemon reports it.
type layerProgress struct {
	current, total int64
	done           bool
}

// pullProgress accumulates one pull's progress messages. It is written by
// the goroutine reading the pull stream and read by Pulls.
type pullProgress struct {
	// mu guards everything that follows.
	mu           sync.Mutex
	layers       map[string]*layerProgress
	order        int
	status       string
	lastProgress time.Time
}

// observe records one message and reports whether it is progress: a layer
// status or byte count the pull had not reached before. Repeats are not,
// so a daemon that keeps talking without moving still stalls.
func (p *pullProgress) observe(msg *jsonmessage.JSONMessage, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.layers == nil {
		p.layers = map[string]*layerProgress{}
	}
	moved := false
	if msg.Status != "" && msg.Status != p.status {
		p.status = msg.Status
		moved = true
	}
	if msg.ID == "" {
		if moved {
			p.lastProgress = now
		}
		return moved
	}
	l, ok := p.layers[msg.ID]
	if !ok {
		// Only layer ids (digest prefixes) carry progress; the first
		// message of a pull ("Pulling from library/x") carries the tag
		// as its id and is not a layer.
		if msg.Progress == nil && !isLayerStatus(msg.Status) {
			if moved {
				p.lastProgress = now
			}
			return moved
		}
		l = &layerProgress{}
		p.layers[msg.ID] = l
		moved = true
	}
	switch msg.Status {
	case "Downloading":
		if pr := msg.Progress; pr != nil {
			if pr.Total > 0 {
				l.total = pr.Total
			}
			if pr.Current > l.current {
				l.current = pr.Current
				moved = true
			}
		}
	case "Download complete", "Pull complete", "Verifying Checksum":
		if l.total > 0 && l.current < l.total {
			l.current = l.total
			moved = true
		}
		if !l.done {
			l.done = true
			moved = true
		}
	case "Extracting":
		// Extraction progress is progress, but its bytes are the
		// uncompressed size: it does not count towards the download.
		if msg.Progress != nil {
			moved = true
		}
	}
	if moved {
		p.lastProgress = now
	}
	return moved
}

func isLayerStatus(s string) bool {
	switch s {
	case "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete",
		"Extracting", "Pull complete", "Already exists", "Retrying":
		return true
	}
	return false
}

// fill copies the progress into info.
func (p *pullProgress) fill(info *PullInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.layers {
		info.BytesDone += l.current
		info.BytesTotal += l.total
	}
	info.Layers = len(p.layers)
	info.Status = p.status
	if !p.lastProgress.IsZero() {
		info.LastProgress = p.lastProgress
	}
}

// readPullStream decodes Docker's progress stream (pull or import) with
// Docker's own message type until its end, calling onMessage for each
// message, and returns the first error the stream carries. A failure after
// the response headers (unknown manifest, registry gone mid-pull) arrives
// this way, inside a 200 response.
func readPullStream(r io.Reader, onMessage func(*jsonmessage.JSONMessage)) error {
	dec := json.NewDecoder(r)
	for {
		var msg jsonmessage.JSONMessage
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read progress stream: %w", err)
		}
		if msg.Error != nil {
			return msg.Error
		}
		if msg.ErrorMessage != "" {
			return errors.New(msg.ErrorMessage)
		}
		if onMessage != nil {
			onMessage(&msg)
		}
	}
}
