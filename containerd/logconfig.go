package containerd

import (
	"fmt"
	"strconv"

	"github.com/docker/docker/api/types/container"
	units "github.com/docker/go-units"
)

// Log drivers a LogConfig may name. Both rotate on their own, which is the
// point: Docker keeps its own copy of every task's output besides the
// sandbox files, and without a cap that copy grows until the disk is full.
const (
	LogDriverJSONFile = "json-file"
	LogDriverLocal    = "local"
)

// Defaults of a zero LogConfig: json-file (what `docker logs` and most
// operators' tooling expect), 10 MB per file, two files.
const (
	DefaultLogDriver  = LogDriverJSONFile
	DefaultLogMaxSize = "10m"
	DefaultLogMaxFile = 2
)

// LogConfig bounds the log Docker keeps of a container (HostConfig.LogConfig).
// The zero value means the defaults above; a Spec's zero LogConfig means the
// Client's (Config.Log).
type LogConfig struct {
	// Driver is LogDriverJSONFile or LogDriverLocal; "" means json-file.
	Driver string
	// MaxSize is the size of one log file before Docker rotates it, in
	// Docker's notation ("10m", "512k", "1g"); "" means DefaultLogMaxSize.
	MaxSize string
	// MaxFile is how many files Docker keeps, the current one included;
	// 0 means DefaultLogMaxFile.
	MaxFile int
}

// IsZero reports whether c sets nothing.
func (c LogConfig) IsZero() bool { return c == LogConfig{} }

// withDefaults fills the unset fields.
func (c LogConfig) withDefaults() LogConfig {
	if c.Driver == "" {
		c.Driver = DefaultLogDriver
	}
	if c.MaxSize == "" {
		c.MaxSize = DefaultLogMaxSize
	}
	if c.MaxFile == 0 {
		c.MaxFile = DefaultLogMaxFile
	}
	return c
}

// Validate checks c after defaults: a known driver, a size Docker parses
// (at least 1 KiB, since smaller files would rotate on every line) and at
// least one file.
func (c LogConfig) Validate() error {
	c = c.withDefaults()
	switch c.Driver {
	case LogDriverJSONFile, LogDriverLocal:
	default:
		return fmt.Errorf("log driver %q: want %s or %s, the drivers that rotate", c.Driver, LogDriverJSONFile, LogDriverLocal)
	}
	n, err := units.RAMInBytes(c.MaxSize)
	if err != nil {
		return fmt.Errorf("log max size %q: %w", c.MaxSize, err)
	}
	if n < 1<<10 {
		return fmt.Errorf("log max size %q: want at least 1k", c.MaxSize)
	}
	if c.MaxFile < 1 {
		return fmt.Errorf("log max file %d: want at least 1", c.MaxFile)
	}
	return nil
}

// MaxBytes is the most Docker keeps of one container's log under c: every
// file at its cap. (The local driver compresses rotated files, so it keeps
// less.)
func (c LogConfig) MaxBytes() (int64, error) {
	c = c.withDefaults()
	n, err := units.RAMInBytes(c.MaxSize)
	if err != nil {
		return 0, fmt.Errorf("log max size %q: %w", c.MaxSize, err)
	}
	return n * int64(c.MaxFile), nil
}

// docker translates c into HostConfig.LogConfig.
func (c LogConfig) docker() (container.LogConfig, error) {
	if err := c.Validate(); err != nil {
		return container.LogConfig{}, err
	}
	c = c.withDefaults()
	return container.LogConfig{
		Type: c.Driver,
		Config: map[string]string{
			"max-size": c.MaxSize,
			"max-file": strconv.Itoa(c.MaxFile),
		},
	}, nil
}
