package status

import "errors"

var (
	// ErrInUse means a live process already accepts connections on the socket
	// path that Listen was asked to use.
	ErrInUse = errors.New("another executor is serving there")
	// ErrNotSocket means something other than a Unix socket (a regular file,
	// a directory, a symlink) sits at the socket path; Listen never removes
	// such a file.
	ErrNotSocket = errors.New("the path exists and is not a socket; refusing to replace it")
)
