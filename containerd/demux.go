package containerd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// copyBufs lends the log demuxer its copy buffer only while a frame is
// being copied.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// demux copies Docker's multiplexed output stream (each frame an 8-byte
// header: stream byte, three zero bytes, big-endian payload size) to stdout
// and stderr.
//
// It does what stdcopy.StdCopy does, but stdcopy keeps a 32 KiB buffer for
// the stream's whole life, and a followed log stream lives as long as its
// container: with hundreds of tasks that buffer alone was a third of the
// executor's memory per task. Here a buffer is borrowed per frame.
func demux(stdout, stderr io.Writer, r io.Reader) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read log frame header: %w", err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[4:]))
		var w io.Writer
		switch hdr[0] {
		case 0, 1: // stdin (never sent for our containers) goes with stdout, as in stdcopy
			w = stdout
		case 2:
			w = stderr
		case 3: // the daemon's own error, in band
			msg, _ := io.ReadAll(io.LimitReader(r, min(size, 4096)))
			return fmt.Errorf("docker log stream error: %s", msg)
		default:
			return fmt.Errorf("log stream: unknown stream id %d in a frame header", hdr[0])
		}
		bp := copyBufs.Get().(*[]byte)
		n, err := io.CopyBuffer(w, io.LimitReader(r, size), *bp)
		copyBufs.Put(bp)
		if err != nil {
			return fmt.Errorf("copy log frame: %w", err)
		}
		if n < size {
			return fmt.Errorf("log frame cut short after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
	}
}
