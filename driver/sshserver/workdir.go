package sshserver

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// createWorkingDir creates dir and its missing parents with mode 0755.
// The directories that it creates belong to id, or stay root's when id is
// nil. Directories that exist keep their owner and mode.
//
// It walks the path by file descriptor, and sets the owner and mode of a
// new directory through a descriptor opened without following links, so a
// process that swaps the new directory for a link cannot redirect them.
func createWorkingDir(dir string, id *identity) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("working directory %q is not an absolute path", dir)
	}
	parent, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to open /: %w", err)
	}
	defer func() { unix.Close(parent) }()

	current := "/"
	for _, part := range strings.Split(filepath.Clean(dir), "/") {
		if part == "" {
			continue
		}
		current = filepath.Join(current, part)
		next, err := openOrCreateDir(parent, part, current, id)
		if err != nil {
			return err
		}
		unix.Close(parent)
		parent = next
	}
	return nil
}

// openOrCreateDir opens the directory name in parent, and creates it
// first, owned by id, when it is missing. path names it in errors.
func openOrCreateDir(parent int, name, path string, id *identity) (int, error) {
	err := unix.Mkdirat(parent, name, 0o755)
	if errors.Is(err, unix.EEXIST) {
		// an existing directory, or a link to one, as the image has it
		fd, err := unix.Openat(parent, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%s exists and is not a directory", path)
		}
		if err != nil {
			return -1, fmt.Errorf("failed to open %s: %w", path, err)
		}
		return fd, nil
	}
	if err != nil {
		return -1, fmt.Errorf("failed to create %s: %w", path, err)
	}

	fd, err := unix.Openat(parent, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("failed to open %s after creating it: %w", path, err)
	}
	// the umask may have cleared bits of 0755; the mode is set while root
	// still owns the directory, which needs no CAP_FOWNER
	if err := unix.Fchmod(fd, 0o755); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("failed to set the mode of %s: %w", path, err)
	}
	if id != nil {
		if err := unix.Fchown(fd, int(id.uid), int(id.gid)); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("failed to give %s to the user %q: %w", path, id.name, err)
		}
	}
	return fd, nil
}
