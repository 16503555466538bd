package initbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Install writes binary into dir under a name that carries its SHA-256, and
// returns the file's path. A file of that name with the same content is
// kept, so plugins of the same build share one file, and a container that
// mounts it keeps a stable path across plugin restarts. Another file of
// that name is replaced.
//
// dir must belong to this process's user and must not be writable by
// anyone else, because every container runs the file as its init.
func Install(dir string, binary []byte) (string, error) {
	if len(binary) == 0 {
		return "", errors.New("no init binary to install")
	}
	if err := PrepareDir(dir); err != nil {
		return "", err
	}

	sum := sha256.Sum256(binary)
	path := filepath.Join(dir, FileName+"-"+hex.EncodeToString(sum[:8]))
	if same, err := sameContent(path, binary); err != nil {
		return "", err
	} else if same {
		return path, nil
	}

	// write a temporary file and rename it, so that a container never
	// mounts a file that is half written
	tmp, err := os.CreateTemp(dir, ".tmp-"+FileName+"-")
	if err != nil {
		return "", fmt.Errorf("failed to write the init into %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(binary); err != nil {
		tmp.Close()
		return "", fmt.Errorf("failed to write the init into %s: %w", dir, err)
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return "", fmt.Errorf("failed to make the init in %s executable: %w", dir, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("failed to write the init into %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("failed to write the init into %s: %w", dir, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("failed to install the init as %s: %w", path, err)
	}
	return path, nil
}

// PrepareDir creates the plugin's data_dir, mode 0755, when it is missing,
// and checks that it is a directory of this process's user that neither
// its group nor other users may write to.
func PrepareDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%q is not an absolute path; set data_dir to an absolute directory such as /var/lib/nomad-driver-sshrerun", dir)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("failed to create %s: %w", dir, err)
		}
	}
	return CheckDir(dir)
}

// CheckDir fails when dir is not a directory of this process's user, or
// when its group or other users may write to it.
func CheckDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("failed to check %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory; set data_dir to a directory that only the Nomad client's user can write", dir)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s has mode %v, so other users could replace the init of every container; run chmod go-w %s, or set data_dir to a directory that only the Nomad client's user can write", dir, info.Mode().Perm(), dir)
	}
	if stat, ok := info.Sys().(*syscall.Stat_t); ok && int(stat.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to the plugin's uid %d; run chown %d %s, or set data_dir to a directory of the Nomad client's user", dir, stat.Uid, os.Geteuid(), os.Geteuid(), dir)
	}
	return nil
}

// sameContent reports whether path is a regular file that contains binary.
func sameContent(path string, binary []byte) (bool, error) {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to check the installed init %s: %w", path, err)
	}
	if !info.Mode().IsRegular() || info.Size() != int64(len(binary)) {
		return false, nil
	}
	current, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("failed to check the installed init %s: %w", path, err)
	}
	return bytes.Equal(current, binary), nil
}
