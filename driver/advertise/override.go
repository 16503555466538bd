package advertise

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"time"
)

// fileState is the existence, symbolic link target, modification time and
// size of the override file, which Current compares to detect a change since
// the cached result. A rewrite that keeps the size and the timestamp (on a
// file system with coarse timestamps) goes unnoticed.
type fileState struct {
	exists     bool
	linkTarget string // "" unless the path is a symbolic link
	modTime    time.Time
	size       int64
	mode       fs.FileMode
}

func (s fileState) equal(other fileState) bool {
	return s.exists == other.exists && s.linkTarget == other.linkTarget &&
		s.modTime.Equal(other.modTime) && s.size == other.size
}

// worldWritable reports whether every user may write the file, which lets
// any local user change the advertised address.
//
// NOTE: only the file's own mode is checked. A directory on the path that
// other users may write lets them replace the file too.
func (s fileState) worldWritable() bool {
	return s.mode.Perm()&0o002 != 0
}

// statOverride returns the state of the override file. A missing file is a
// state, not an error. A symbolic link is followed, and a dangling link is an
// error, because the operator meant to override. Any other stat failure,
// such as a permission error, and a path that is not a regular file are
// errors too. The returned state has exists set whenever the path exists.
func statOverride(path string) (fileState, error) {
	linkInfo, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, fmt.Errorf("override file %s: %w", path, err)
	}

	state := fileState{exists: true}
	if linkInfo.Mode()&fs.ModeSymlink != 0 {
		state.linkTarget, err = os.Readlink(path)
		if err != nil {
			return state, fmt.Errorf("override file %s: %w", path, err)
		}
	}

	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && state.linkTarget != "":
		return state, fmt.Errorf("override file %s is a symbolic link to %s, which does not exist; point the link at a file that contains one IPv4 or IPv6 address, or delete the link to use instance metadata", path, state.linkTarget)
	case err != nil:
		return state, fmt.Errorf("override file %s: %w", path, err)
	case info.IsDir():
		return state, fmt.Errorf("override file %s is a directory; replace it with a file that contains one IPv4 or IPv6 address", path)
	case !info.Mode().IsRegular():
		// Opening a named pipe would block until a writer appears.
		return state, fmt.Errorf("override file %s is not a regular file (mode %s); replace it with a file that contains one IPv4 or IPv6 address", path, info.Mode())
	}

	state.modTime, state.size, state.mode = info.ModTime(), info.Size(), info.Mode()
	return state, nil
}

// openFile opens the override file for reading. Tests replace it to make the
// open fail in ways that file permissions cannot, because they run as root.
type openFile func(name string) (io.ReadCloser, error)

func openOS(name string) (io.ReadCloser, error) {
	return os.Open(name)
}

// readOverride reads and validates the override file. It reads at most
// maxRawBytes+1 bytes, so a huge file is rejected as too long instead of being
// loaded. raw is nil when nothing was read. A file that is deleted after
// statOverride saw it returns an error wrapping fs.ErrNotExist.
func readOverride(path string, open openFile) (addr netip.Addr, raw []byte, err error) {
	file, err := open(path)
	if errors.Is(err, fs.ErrPermission) {
		return netip.Addr{}, nil, fmt.Errorf("override file %s: %w; make it readable by the user that runs the Nomad client, or delete it to use instance metadata", path, err)
	}
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("override file %s: %w", path, err)
	}
	defer file.Close()

	raw, err = io.ReadAll(io.LimitReader(file, maxRawBytes+1))
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("override file %s: reading failed: %w", path, err)
	}

	addr, err = ParseAddress("override file "+path, raw)
	if err != nil {
		return netip.Addr{}, raw, fmt.Errorf("%w; write one IPv4 or IPv6 address to the file, or delete it to use instance metadata", err)
	}
	return addr, raw, nil
}
