//go:build !linux

package health

import (
	"context"
	"errors"
	"net"
	"os"
)

var errNoNetns = errors.New("network namespaces are only supported on Linux")

func openNetns(int, func([]byte) bool) (*os.File, bool, error) { return nil, false, errNoNetns }

func cgroupNames(string) func([]byte) bool { return func([]byte) bool { return false } }

func dialInNetns(context.Context, *net.Dialer, *os.File, string, string) (net.Conn, error) {
	return nil, errNoNetns
}
