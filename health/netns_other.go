//go:build !linux

package health

import (
	"context"
	"errors"
	"net"
)

var errNoNetns = errors.New("network namespaces are only supported on Linux")

func sameNetns(int) (bool, error) { return false, errNoNetns }

func dialInNetns(context.Context, *net.Dialer, int, string, string) (net.Conn, error) {
	return nil, errNoNetns
}
