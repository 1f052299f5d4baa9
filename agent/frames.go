package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
)

// initialFrameBuffer is the stream reader's starting buffer; it grows only
// when a frame needs more.
const initialFrameBuffer = 16 << 10

// newFrameReader returns mesos-go's RecordIO reader with its frame limit
// raised to max bytes (a LAUNCH with a large TaskInfo.data passes the 4 MiB
// default).
//
// recordio.MaxMessageSize(max) would allocate a buffer of max/2 up front,
// and the bufio.Scanner inside then reads through all of it, so a 64 MiB
// limit cost about 32 MiB of resident memory per stream for events of a few
// hundred bytes. The reader embeds that bufio.Scanner, so its Buffer method
// sets the same limit with a small starting buffer instead. If a later
// mesos-go stops embedding it, the 4 MiB default stays in force and the
// large-LAUNCH test fails.
func newFrameReader(r io.Reader, max int) framing.Reader {
	fr := recordio.NewReader(r)
	if s, ok := fr.(interface{ Buffer([]byte, int) }); ok {
		s.Buffer(make([]byte, initialFrameBuffer), max)
	}
	return fr
}

// frameError explains a RecordIO read error, or returns nil for one that is
// not about the stream's framing (a broken connection).
func frameError(err error, max int) error {
	switch {
	case errors.Is(err, bufio.ErrTooLong):
		return fmt.Errorf("garbage in the event stream: %w (a frame is larger than the %d byte limit)", framing.ErrorOversizedFrame, max)
	case errors.Is(err, framing.ErrorBadSize), errors.Is(err, framing.ErrorOversizedFrame), errors.Is(err, framing.ErrorUnderrun):
		return fmt.Errorf("garbage in the event stream: %w", err)
	}
	return nil
}
