package sshserver

import (
	"fmt"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openPTY opens a new pseudo-terminal pair and returns its master and
// terminal side.
//
// It does not use github.com/creack/pty, because that package calls
// os.File.Fd on the master, which switches it to blocking mode. A blocking
// master cannot be closed from another goroutine during a read and does not
// support read deadlines, which the output drain needs. Here the master is
// non-blocking before os.NewFile, so Go's poller manages it.
func openPTY() (master, tty *os.File, err error) {
	masterFD, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx: %w", err)
	}

	ttyFD, name, err := openPTYPeer(masterFD)
	if err != nil {
		_ = unix.Close(masterFD)
		return nil, nil, err
	}

	if err := unix.SetNonblock(masterFD, true); err != nil {
		_ = unix.Close(masterFD)
		_ = unix.Close(ttyFD)
		return nil, nil, fmt.Errorf("setting pty master non-blocking: %w", err)
	}
	return os.NewFile(uintptr(masterFD), "/dev/ptmx"), os.NewFile(uintptr(ttyFD), name), nil
}

// openPTYPeer unlocks the terminal side of masterFD and opens it.
func openPTYPeer(masterFD int) (int, string, error) {
	if err := unix.IoctlSetPointerInt(masterFD, unix.TIOCSPTLCK, 0); err != nil {
		return -1, "", fmt.Errorf("unlocking pty: %w", err)
	}

	number, err := unix.IoctlGetUint32(masterFD, unix.TIOCGPTN)
	if err != nil {
		return -1, "", fmt.Errorf("reading pty number: %w", err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(number), 10)

	// TIOCGPTPEER (Linux 4.13) opens the peer without a path lookup, which
	// also works when /dev/pts of the container is not the master's devpts
	// instance. Older kernels reject the request, so fall back to the path.
	flags := unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC
	ttyFD, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(masterFD), unix.TIOCGPTPEER, uintptr(flags))
	if errno == 0 {
		return int(ttyFD), name, nil
	}

	fd, err := unix.Open(name, flags, 0)
	if err != nil {
		return -1, "", fmt.Errorf("opening %s: %w", name, err)
	}
	return fd, name, nil
}

// setWindowSize sets the terminal size of the pty. The kernel sends
// SIGWINCH to the terminal's foreground process group when it changes.
func setWindowSize(master *os.File, window windowSize) error {
	size := &unix.Winsize{
		Row:    clampUint16(window.rows),
		Col:    clampUint16(window.columns),
		Xpixel: clampUint16(window.width),
		Ypixel: clampUint16(window.height),
	}

	conn, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	if err := conn.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, size)
	}); err != nil {
		return err
	}
	return ioctlErr
}

func clampUint16(value uint32) uint16 {
	return uint16(min(value, math.MaxUint16))
}
