package sshserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// createWorkingDir creates dir and its missing parents with mode 0755.
// The directories that it creates belong to id, or stay root's when id is
// nil. Directories that exist keep their owner and mode.
func createWorkingDir(dir string, id *identity) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("working directory %q is not an absolute path", dir)
	}
	current := "/"
	for _, part := range strings.Split(filepath.Clean(dir), "/") {
		if part == "" {
			continue
		}
		current = filepath.Join(current, part)
		err := os.Mkdir(current, 0o755)
		if errors.Is(err, fs.ErrExist) {
			info, statErr := os.Stat(current)
			if statErr != nil {
				return fmt.Errorf("failed to check %s: %w", current, statErr)
			}
			if !info.IsDir() {
				return fmt.Errorf("%s exists and is not a directory", current)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to create %s: %w", current, err)
		}
		if id != nil {
			if err := os.Lchown(current, int(id.uid), int(id.gid)); err != nil {
				return fmt.Errorf("failed to give %s to the user %q: %w", current, id.name, err)
			}
		}
		// the umask may have cleared bits of 0755
		if err := os.Chmod(current, 0o755); err != nil {
			return fmt.Errorf("failed to set the mode of %s: %w", current, err)
		}
	}
	return nil
}
