package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ContainerDirName is the directory inside a task's directory that its
// container sees at /mnt/mesos/sandbox. The task's stdout and stderr live
// beside it, out of the container's reach: the container can write anything
// in its own directory, and nothing it writes there is ever opened by path.
const ContainerDirName = "sandbox"

// TaskFiles is one task run's files: its directory tasks/<task_id>, the log
// files in it and the container's directory below it. Close releases them.
type TaskFiles struct {
	Dir            *os.File // tasks/<task_id>, held open for the run's life
	Stdout, Stderr *RotatingFile
	// Previous is the name an earlier run's directory of the same task id
	// was moved to ("" when there was none).
	Previous string
}

// Close closes the directory and both log files.
func (f *TaskFiles) Close() error {
	if f == nil {
		return nil
	}
	var errs []error
	if f.Stdout != nil {
		errs = append(errs, f.Stdout.Close())
	}
	if f.Stderr != nil {
		errs = append(errs, f.Stderr.Close())
	}
	if f.Dir != nil {
		errs = append(errs, f.Dir.Close())
	}
	return errors.Join(errs...)
}

// ContainerDir returns the container's directory of a task whose directory is
// taskDir (a path, for the bind mount).
func ContainerDir(taskDir string) string { return filepath.Join(taskDir, ContainerDirName) }

// PrepareTask creates a fresh directory for a run of task id under
// root/tasks, with stdout and stderr opened for appending and the container's
// directory with the relative volume paths volumes created in it. An earlier
// run's directory of the same id is moved aside (to <id>.run-<time>), so
// that every run starts clean and the earlier logs stay readable until the
// sandbox retention removes them. Nothing is opened through a path a
// container could change.
func PrepareTask(root, id string, maxBytes int64, keep int, volumes []string) (*TaskFiles, error) {
	if _, err := TaskDir(root, id); err != nil {
		return nil, err
	}
	rootDir, err := openDir(root)
	if err != nil {
		return nil, err
	}
	defer rootDir.Close()
	tasks, err := openDirAt(rootDir, "tasks", true)
	if err != nil {
		return nil, err
	}
	defer tasks.Close()
	tf := &TaskFiles{}
	var st unix.Stat_t
	if err := unix.Fstatat(int(tasks.Fd()), id, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if tf.Previous, err = moveAside(tasks, id); err != nil {
			return nil, err
		}
	}
	if err := unix.Mkdirat(int(tasks.Fd()), id, dirPerm); err != nil {
		return nil, fmt.Errorf("create the task directory: %w", err)
	}
	if tf.Dir, err = openDirAt(tasks, id, false); err != nil {
		return nil, err
	}
	fail := func(err error) (*TaskFiles, error) {
		tf.Close()
		return nil, err
	}
	cdir, err := openDirAt(tf.Dir, ContainerDirName, true)
	if err != nil {
		return fail(err)
	}
	for _, v := range volumes {
		if err := MkdirBeneath(cdir, v); err != nil {
			cdir.Close()
			return fail(fmt.Errorf("volume %s: %w", v, err))
		}
	}
	cdir.Close()
	if tf.Stdout, err = OpenRotatingAt(tf.Dir, "stdout", maxBytes, keep); err != nil {
		return fail(err)
	}
	if tf.Stderr, err = OpenRotatingAt(tf.Dir, "stderr", maxBytes, keep); err != nil {
		return fail(err)
	}
	return tf, nil
}

// moveAside renames tasks/<id> to a name no other directory has.
func moveAside(tasks *os.File, id string) (string, error) {
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	for i := 0; i < 100; i++ {
		name := id + ".run-" + stamp
		if i > 0 {
			name += "-" + strconv.Itoa(i)
		}
		err := unix.Renameat2(int(tasks.Fd()), id, int(tasks.Fd()), name, unix.RENAME_NOREPLACE)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("move the earlier run of task %s aside: %w", id, err)
		}
	}
	return "", fmt.Errorf("move the earlier run of task %s aside: no free name", id)
}
