package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mdx-executor/mdx/internal/testenv"
)

var _ io.WriteCloser = (*RotatingFile)(nil)

// files returns the contents of path, path.1, path.2, ... up to path.n; a
// missing file reads as "<none>".
func files(t *testing.T, path string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i <= n; i++ {
		name := path
		if i > 0 {
			name = fmt.Sprintf("%s.%d", path, i)
		}
		b, err := os.ReadFile(name)
		switch {
		case errors.Is(err, os.ErrNotExist):
			out = append(out, "<none>")
		case err != nil:
			t.Fatal(err)
		default:
			out = append(out, string(b))
		}
	}
	return out
}

func TestRotation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxBytes int64
		keep     int
		existing string // content of path before opening
		writes   []string
		// want is path, path.1, path.2, ... as far as listed; one more
		// index is checked to be absent.
		want []string
	}{
		{
			name: "under the cap", maxBytes: 10, keep: 2,
			writes: []string{"abc", "def"},
			want:   []string{"abcdef"},
		},
		{
			name: "exactly the cap does not rotate", maxBytes: 6, keep: 2,
			writes: []string{"abc", "def"},
			want:   []string{"abcdef"},
		},
		{
			name: "one byte over rotates before the write", maxBytes: 6, keep: 2,
			writes: []string{"abc", "defg"},
			want:   []string{"defg", "abc"},
		},
		{
			name: "keeps at most keep old files", maxBytes: 4, keep: 2,
			writes: []string{"aaaa", "bbbb", "cccc", "dddd", "eeee"},
			want:   []string{"eeee", "dddd", "cccc"},
		},
		{
			name: "keep 1", maxBytes: 4, keep: 1,
			writes: []string{"aaaa", "bbbb", "cccc"},
			want:   []string{"cccc", "bbbb"},
		},
		{
			name: "oversized write goes whole to a fresh file", maxBytes: 4, keep: 3,
			writes: []string{"ab", "0123456789", "cd"},
			want:   []string{"cd", "0123456789", "ab"},
		},
		{
			name: "oversized first write into an empty file", maxBytes: 4, keep: 3,
			writes: []string{"0123456789", "x"},
			want:   []string{"x", "0123456789"},
		},
		{
			name: "existing file counts towards the cap", maxBytes: 6, keep: 2,
			existing: "old!",
			writes:   []string{"new"},
			want:     []string{"new", "old!"},
		},
		{
			name: "existing file is appended to", maxBytes: 10, keep: 2,
			existing: "old!",
			writes:   []string{"new"},
			want:     []string{"old!new"},
		},
		{
			name: "existing file already over a smaller cap", maxBytes: 2, keep: 2,
			existing: "0123456789",
			writes:   []string{"a"},
			want:     []string{"a", "0123456789"},
		},
		{
			name: "empty writes never rotate", maxBytes: 2, keep: 2,
			writes: []string{"ab", "", "", "c"},
			want:   []string{"c", "ab"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "stdout")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r, err := OpenRotating(path, tt.maxBytes, tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.writes {
				n, err := r.Write([]byte(w))
				if err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			want := append(append([]string(nil), tt.want...), "<none>")
			got := files(t, path, len(tt.want))
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("files = %q, want %q", got, want)
			}
		})
	}
}

func TestOpenRotatingDefaultsAndPerms(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tasks", "web-1")
	path := filepath.Join(dir, "stderr")
	r, err := OpenRotating(path, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.maxBytes != 10<<20 || r.keep != 5 {
		t.Errorf("defaults: maxBytes %d keep %d, want %d and %d", r.maxBytes, r.keep, 10<<20, 5)
	}
	umask := currentUmask(t)
	for name, want := range map[string]os.FileMode{dir: 0o755 &^ umask, path: 0o644 &^ umask} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
}

// currentUmask reads the umask from /proc without changing it (the test
// binary runs other tests in parallel).
func currentUmask(t *testing.T) os.FileMode {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		testenv.SkipOrFail(t, "cannot read umask: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			var m uint32
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
				return os.FileMode(m)
			}
		}
	}
	testenv.SkipOrFail(t, "no Umask line in /proc/self/status")
	return 0
}

func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	r, err := OpenRotating(filepath.Join(t.TempDir(), "stdout"), 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
}

// When rotation fails (here: the sandbox directory was removed under a
// running task), Write reports it and writes nothing. The file is bound to
// the directory it was opened in, not to its path: a directory (or a
// symlink) put at the same path later is never written to.
func TestRotationFailure(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "task")
	path := filepath.Join(dir, "stdout")
	r, err := OpenRotating(path, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Write([]byte("aaaa")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if n, err := r.Write([]byte("bbbb")); err == nil || n != 0 {
			t.Fatalf("Write with the directory gone = %d, %v; want 0 and an error", n, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Write recreated the removed directory: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Write([]byte("cccc")); err == nil || n != 0 {
		t.Fatalf("Write after a new directory took the path = %d, %v; want 0 and an error", n, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the writer created %d files in a directory that is not its own", len(ents))
	}
}

// Concurrent writers: no write is split or interleaved with another, no file
// passes the cap, and nothing is lost while the rotated files suffice.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	const (
		writers  = 8
		lines    = 200
		maxBytes = 4096
	)
	path := filepath.Join(t.TempDir(), "stdout")
	// "w3 l0042 xxxx...\n": fixed width, so the cap is a whole number of lines.
	line := func(w, l int) string { return fmt.Sprintf("w%d l%04d %s\n", w, l, strings.Repeat("x", 20)) }
	lineLen := len(line(0, 0))
	total := writers * lines * lineLen
	keep := total/(maxBytes/lineLen*lineLen) + 2 // room for every line

	r, err := OpenRotating(path, maxBytes, keep)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for l := range lines {
				if _, err := r.Write([]byte(line(w, l))); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for i := 0; i <= keep+1; i++ {
		name := path
		if i > 0 {
			name = fmt.Sprintf("%s.%d", path, i)
		}
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > maxBytes {
			t.Errorf("%s is %d bytes, over the %d cap", name, len(b), maxBytes)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			l := sc.Text() + "\n"
			if len(l) != lineLen || !strings.HasSuffix(l, strings.Repeat("x", 20)+"\n") {
				t.Fatalf("%s: torn line %q", name, l)
			}
			if seen[l] {
				t.Fatalf("%s: duplicate line %q", name, l)
			}
			seen[l] = true
		}
	}
	if len(seen) != writers*lines {
		t.Errorf("found %d lines, want %d", len(seen), writers*lines)
	}
}
