//go:build !linux

package sshserver

import (
	"errors"
	"os"
)

// errPTYUnsupported is returned on systems other than Linux, where the init
// never runs because job containers are Linux containers.
var errPTYUnsupported = errors.New("pseudo-terminals are only supported on Linux")

func openPTY() (master, tty *os.File, err error) {
	return nil, nil, errPTYUnsupported
}

func setWindowSize(master *os.File, window windowSize) error {
	return errPTYUnsupported
}
