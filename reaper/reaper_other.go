//go:build !linux

package reaper

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"github.com/sirupsen/logrus"
)

var errUnsupported = fmt.Errorf("reaper: child subreaper and wait4 reaping need Linux: %w", errors.ErrUnsupported)

// New returns an error wrapping errors.ErrUnsupported: the reaper needs
// Linux.
func New(log *logrus.Entry) (*Reaper, error) { return nil, errUnsupported }

// Run returns an error wrapping errors.ErrUnsupported.
func (r *Reaper) Run(ctx context.Context) error { return errUnsupported }

// Start returns an error wrapping errors.ErrUnsupported.
func (r *Reaper) Start(cmd *exec.Cmd) (*Process, error) { return nil, errUnsupported }

// Output returns an error wrapping errors.ErrUnsupported.
func (r *Reaper) Output(ctx context.Context, cmd *exec.Cmd, limit int) ([]byte, int, error) {
	return nil, -1, errUnsupported
}

// Signal returns an error wrapping errors.ErrUnsupported.
func (p *Process) Signal(sig syscall.Signal) error { return errUnsupported }

// SignalGroup returns an error wrapping errors.ErrUnsupported.
func (p *Process) SignalGroup(sig syscall.Signal) error { return errUnsupported }
