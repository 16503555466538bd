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

// fileState is the existence, modification time and size of the override
// file, which Current compares to detect a change since the cached result. A
// rewrite that keeps the size and the timestamp (on a file system with coarse
// timestamps) goes unnoticed.
type fileState struct {
	exists  bool
	modTime time.Time
	size    int64
}

func (s fileState) equal(other fileState) bool {
	return s.exists == other.exists && s.modTime.Equal(other.modTime) && s.size == other.size
}

// statOverride returns the state of the override file. A missing file is a
// state, not an error. Any other stat failure, such as a permission error, is
// returned.
func statOverride(path string) (fileState, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, fmt.Errorf("override file %s: %w", path, err)
	}
	if info.IsDir() {
		return fileState{}, fmt.Errorf("override file %s is a directory; replace it with a file that contains one IPv4 or IPv6 address", path)
	}

	return fileState{exists: true, modTime: info.ModTime(), size: info.Size()}, nil
}

// readOverride reads and validates the override file. It reads at most
// maxRawBytes+1 bytes, so a huge file is rejected as too long instead of being
// loaded. A file that is deleted after statOverride saw it returns an error
// wrapping fs.ErrNotExist.
func readOverride(path string) (netip.Addr, error) {
	file, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("override file %s: %w", path, err)
	}
	defer file.Close()

	raw, err := io.ReadAll(io.LimitReader(file, maxRawBytes+1))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("override file %s: %w", path, err)
	}

	addr, err := ParseAddress("override file "+path, raw)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w; write one IPv4 or IPv6 address to the file, or delete it to use instance metadata", err)
	}
	return addr, nil
}
