package containerd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/docker/docker/pkg/stdcopy"
)

func frame(stream byte, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

func TestDemux(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // larger than the copy buffer
	tests := []struct {
		name             string
		in               []byte
		wantOut, wantErr string
		errContains      string
	}{
		{"empty", nil, "", "", ""},
		{"interleaved", bytes.Join([][]byte{frame(1, "a\n"), frame(2, "e1\n"), frame(1, "b\n"), frame(2, "e2\n")}, nil), "a\nb\n", "e1\ne2\n", ""},
		{"big frame", frame(1, big), big, "", ""},
		{"zero-size frame", append(frame(1, ""), frame(1, "z")...), "z", "", ""},
		{"daemon error", append(frame(1, "ok"), frame(3, "boom")...), "ok", "", "boom"},
		{"unknown stream", frame(9, "x"), "", "", "unknown stream id 9"},
		{"short header", []byte{1, 0, 0}, "", "", "frame header"},
		{"short payload", frame(1, "abcdef")[:10], "ab", "", "cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := demux(&out, &errb, bytes.NewReader(tt.in))
			if tt.errContains == "" && err != nil {
				t.Fatalf("demux() = %v; want nil", err)
			}
			if tt.errContains != "" && (err == nil || !strings.Contains(err.Error(), tt.errContains)) {
				t.Fatalf("demux() = %v; want an error containing %q", err, tt.errContains)
			}
			if out.String() != tt.wantOut || errb.String() != tt.wantErr {
				t.Errorf("demux() wrote stdout %q stderr %q; want %q and %q", trim(out.String()), trim(errb.String()), trim(tt.wantOut), trim(tt.wantErr))
			}
		})
	}
}

// TestDemuxMatchesStdcopy: the same bytes as Docker's own demuxer.
func TestDemuxMatchesStdcopy(t *testing.T) {
	var in bytes.Buffer
	so := stdcopy.NewStdWriter(&in, stdcopy.Stdout)
	se := stdcopy.NewStdWriter(&in, stdcopy.Stderr)
	for i := 0; i < 200; i++ {
		_, _ = io.WriteString(so, strings.Repeat("o", i*37)+"\n")
		_, _ = io.WriteString(se, strings.Repeat("e", i*11)+"\n")
	}
	var a1, a2, b1, b2 bytes.Buffer
	if _, err := stdcopy.StdCopy(&a1, &a2, bytes.NewReader(in.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := demux(&b1, &b2, bytes.NewReader(in.Bytes())); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a1.Bytes(), b1.Bytes()) || !bytes.Equal(a2.Bytes(), b2.Bytes()) {
		t.Errorf("demux output differs from stdcopy.StdCopy (stdout %d vs %d bytes, stderr %d vs %d)", b1.Len(), a1.Len(), b2.Len(), a2.Len())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestDemuxWriterError(t *testing.T) {
	if err := demux(failWriter{}, io.Discard, bytes.NewReader(frame(1, "x"))); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("demux() = %v; want the writer's error", err)
	}
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
