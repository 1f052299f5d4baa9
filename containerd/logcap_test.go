package containerd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// TestDockerLogIsCapped runs a task that prints 200 MB and checks that
// Docker's own copy of its output (json-file, under the daemon's data root)
// stays within the default cap, while rotation shows the output did pass
// through the log. Without a LogConfig the file would hold all 200 MB and
// more (each line is wrapped in JSON).
func TestDockerLogIsCapped(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	exits := watch(t, c, o.labels())

	const printed = 200 << 20
	id := run(t, c, o.spec(image, "chatty", "flood", "209715200"))
	exit := waitExit(t, exits, id, 5*time.Minute)
	if exit.ExitCode != 0 {
		t.Fatalf("flood exited %d, want 0", exit.ExitCode)
	}
	info, err := c.Inspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if info.LogPath == "" {
		t.Fatal("inspect has no LogPath: the container does not use the json-file driver")
	}
	files, total := logFiles(t, info.LogPath)
	limit, err := containerd.LogConfig{}.MaxBytes()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("printed %d bytes; Docker keeps %d bytes in %v (cap %d)", printed, total, files, limit)
	// One JSON-wrapped line may overshoot each file's cap before it rotates.
	const slack = 4 << 10
	if total > limit+slack*containerd.DefaultLogMaxFile {
		t.Errorf("Docker's log of the container holds %d bytes, want at most %d (%d files of %s)",
			total, limit, containerd.DefaultLogMaxFile, containerd.DefaultLogMaxSize)
	}
	if len(files) != containerd.DefaultLogMaxFile {
		t.Errorf("log files %v, want %d (the current one and a rotated one): did the output reach the log?",
			files, containerd.DefaultLogMaxFile)
	}
}

// logFiles returns the names of the json-file log and its rotations
// (<id>-json.log, <id>-json.log.1, ...) and their total size.
func logFiles(t *testing.T, logPath string) ([]string, int64) {
	t.Helper()
	dir, base := filepath.Dir(logPath), filepath.Base(logPath)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsPermission(err) || os.IsNotExist(err) {
			skipOrFail(t, "the daemon's log directory is not readable here (remote or rootless daemon?): %v", err)
		}
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), base) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
		total += fi.Size()
	}
	return names, total
}
