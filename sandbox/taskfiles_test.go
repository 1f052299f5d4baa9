package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPrepareTaskLayoutAndRuns(t *testing.T) {
	root := t.TempDir()
	tf, err := PrepareTask(root, "t1", 0, 0, []string{"data/a", "cache"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Stdout.Write([]byte("first run\n")); err != nil {
		t.Fatal(err)
	}
	tf.Close()
	for _, p := range []string{"tasks/t1/stdout", "tasks/t1/stderr", "tasks/t1/sandbox/data/a", "tasks/t1/sandbox/cache"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// A second run of the same id starts clean; the first stays beside it.
	tf2, err := PrepareTask(root, "t1", 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tf2.Close()
	if !strings.HasPrefix(tf2.Previous, "t1.run-") {
		t.Fatalf("Previous = %q, want t1.run-<time>", tf2.Previous)
	}
	old, err := os.ReadFile(filepath.Join(root, "tasks", tf2.Previous, "stdout"))
	if err != nil || string(old) != "first run\n" {
		t.Errorf("the earlier run's stdout = %q, %v", old, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "tasks/t1/stdout")); err != nil || fi.Size() != 0 {
		t.Errorf("the new run's stdout: %v, %v", fi, err)
	}
}

func TestPrepareTaskRefusesBadIDs(t *testing.T) {
	for _, id := range []string{"", ".", "..", "a/b", "a\x00b"} {
		if _, err := PrepareTask(t.TempDir(), id, 0, 0, nil); !errors.Is(err, ErrInvalidTaskID) {
			t.Errorf("PrepareTask(%q) = %v, want ErrInvalidTaskID", id, err)
		}
	}
}

// A relative volume path cannot leave the sandbox nor pass a symlink that a
// task (or an earlier run) left there.
func TestMkdirBeneathRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	dir, err := openDir(base)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for _, rel := range []string{"../x", "link/x", "link", "/etc"} {
		if err := MkdirBeneath(dir, rel); err == nil {
			t.Errorf("MkdirBeneath(%q) succeeded", rel)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("a directory was created outside: %v", ents)
	}
	if err := MkdirBeneath(dir, "a/./b/../c"); err != nil {
		t.Errorf("MkdirBeneath of a clean-able path: %v", err)
	}
}

// The hostile cases of issue 10: names in the log directory replaced by a
// symlink to a host file or by a FIFO. Rotation renames the replacement away
// without following it, the writer never writes through it and never blocks.
func TestRotatingFileHostileReplacements(t *testing.T) {
	for _, kind := range []string{"symlink", "fifo", "fifo with a reader"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("host file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "stdout")
			r, err := OpenRotating(path, 8, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Write([]byte("12345678")); err != nil {
				t.Fatal(err)
			}
			// The attacker replaces stdout.1 and stdout.2, then stdout.
			for _, n := range []string{"stdout", "stdout.1", "stdout.2"} {
				os.Remove(filepath.Join(dir, n))
				switch kind {
				case "symlink":
					if err := os.Symlink(victim, filepath.Join(dir, n)); err != nil {
						t.Fatal(err)
					}
				default:
					if err := syscall.Mkfifo(filepath.Join(dir, n), 0o666); err != nil {
						t.Fatal(err)
					}
				}
			}
			if kind == "fifo with a reader" {
				rd, err := os.OpenFile(filepath.Join(dir, "stdout"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer rd.Close()
			}
			// Rotation (the write does not fit) moves the replacements along
			// and opens a new stdout: it must be a fresh regular file.
			for i := 0; i < 4; i++ {
				_, _ = r.Write([]byte("abcdefgh"))
			}
			got, _ := os.ReadFile(victim)
			if string(got) != "host file\n" {
				t.Fatalf("the host file was written through a %s: %q", kind, got)
			}
			fi, err := os.Lstat(path)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("stdout after rotation: %v, %v; want a regular file", fi, err)
			}
		})
	}
}

func TestOpenFileAtRefusesNonRegular(t *testing.T) {
	base := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(base, "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	rd, err := os.OpenFile(filepath.Join(base, "fifo"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	dir, err := openDir(base)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if _, err := OpenFileAt(dir, "fifo", syscall.O_WRONLY, 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("OpenFileAt(fifo with a reader) = %v, want ErrNotRegular", err)
	}
}
