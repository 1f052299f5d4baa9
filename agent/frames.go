package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
)

// initialFrameBuffer is the stream reader's starting buffer; it grows only
// when a frame needs more.
const initialFrameBuffer = 16 << 10

// maxHeaderLen bounds a RecordIO size line (without its newline): 20 is the
// textual length of the largest uint64, as in mesos-go's own parser.
const maxHeaderLen = 20

// newFrameReader returns mesos-go's RecordIO reader with its frame limit
// raised to max bytes (a LAUNCH with a large TaskInfo.data passes the 4 MiB
// default), reading through a headerGuard that validates every size line
// first.
//
// recordio.MaxMessageSize(max) would allocate a buffer of max/2 up front,
// and the bufio.Scanner inside then reads through all of it, so a 64 MiB
// limit cost about 32 MiB of resident memory per stream for events of a few
// hundred bytes. The reader embeds that bufio.Scanner, so its Buffer method
// sets the same limit with a small starting buffer instead. If a later
// mesos-go stops embedding it, the 4 MiB default stays in force and the
// large-LAUNCH test fails.
func newFrameReader(r io.Reader, max int) framing.Reader {
	fr := recordio.NewReader(newHeaderGuard(r, max))
	if s, ok := fr.(interface{ Buffer([]byte, int) }); ok {
		s.Buffer(make([]byte, initialFrameBuffer), max)
	}
	return fr
}

// headerGuard passes a RecordIO stream through only after checking each
// frame's size line: decimal digits only, a newline within maxHeaderLen
// bytes, and a value of at most max. mesos-go's reader cannot be trusted with
// a bad header: a size of 2^63 or more turns negative in its int conversion
// and panics in splitFrame, which would kill the executor; and its scanner
// enforces the limit only when its buffer must grow, so a frame below the
// 16 KiB starting buffer passed any smaller limit.
//
// On a bad header the guard returns an error wrapping framing.ErrorBadSize or
// framing.ErrorOversizedFrame and never passes the header on, so the reader
// sees only whole, valid headers and reports the guard's error.
type headerGuard struct {
	r   *bufio.Reader
	max uint64
	// left is the number of payload bytes of the current frame still to be
	// passed on; when zero, the next byte starts a size line.
	left uint64
	// pending is a validated size line not yet handed to the caller.
	pending []byte
	hdr     []byte // the size line being read
	err     error  // sticky: a bad header ends the stream
}

func newHeaderGuard(r io.Reader, max int) *headerGuard {
	return &headerGuard{r: bufio.NewReader(r), max: uint64(max)}
}

// Read implements io.Reader.
func (g *headerGuard) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if g.err != nil {
		return 0, g.err
	}
	if g.left > 0 {
		if uint64(len(p)) > g.left {
			p = p[:g.left]
		}
		n, err := g.r.Read(p)
		g.left -= uint64(n)
		return n, err
	}
	if err := g.readHeader(); err != nil {
		g.err = err
		return 0, err
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

// readHeader reads and checks one size line into pending.
func (g *headerGuard) readHeader() error {
	g.hdr = g.hdr[:0]
	var size uint64
	for {
		c, err := g.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(g.hdr) > 0 {
				// The reader reports the truncated header as an underrun.
				return framing.ErrorUnderrun
			}
			return err
		}
		if c == '\n' {
			break
		}
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: size line \"%s\" has a non-digit", framing.ErrorBadSize, printable(append(g.hdr, c)))
		}
		if len(g.hdr) == maxHeaderLen {
			return fmt.Errorf("%w: size line longer than %d digits", framing.ErrorBadSize, maxHeaderLen)
		}
		g.hdr = append(g.hdr, c)
		d := uint64(c - '0')
		// size*10+d > max, without overflowing uint64.
		if g.max < d || size > (g.max-d)/10 {
			return fmt.Errorf("%w: frame size %s... exceeds the %d byte limit", framing.ErrorOversizedFrame, printable(g.hdr), g.max)
		}
		size = size*10 + d
	}
	if len(g.hdr) == 0 {
		return fmt.Errorf("%w: empty size line", framing.ErrorBadSize)
	}
	g.left = size
	g.pending = strconv.AppendUint(g.pending[:0], size, 10)
	g.pending = append(g.pending, '\n')
	return nil
}

// printable bounds a header for an error message and escapes what is not
// printable ASCII, so the agent's bytes cannot forge log lines.
func printable(b []byte) string {
	if len(b) > maxHeaderLen+1 {
		b = b[:maxHeaderLen+1]
	}
	q := strconv.QuoteToASCII(string(b))
	return q[1 : len(q)-1]
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
