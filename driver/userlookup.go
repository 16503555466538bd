package driver

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
)

// maxAccountFileSize bounds how much of /etc/passwd or /etc/group the
// driver reads from an image. A larger file is not checked.
const maxAccountFileSize = 4 << 20

// errAccountFileUnchecked means that the file is not one that the driver
// can read with certainty: not a regular file, too large, or not readable
// where its link leads.
var errAccountFileUnchecked = errors.New("the file cannot be checked")

// accountFile is the format of /etc/passwd or /etc/group.
type accountFile struct {
	path string
	kind string // "user" or "group"
	// colons is the fewest colons of a valid entry, and ids the fields
	// that must be numeric, as Go's os/user reads the file in the init.
	colons int
	ids    []int
}

var (
	passwdFile = accountFile{path: "/etc/passwd", kind: "user", colons: 6, ids: []int{2, 3}}
	groupFile  = accountFile{path: "/etc/group", kind: "group", colons: 3, ids: []int{2}}
)

// checkContainerUser fails when user, in Docker's "user[:group]" form,
// names a user or group that the created container's /etc/passwd or
// /etc/group does not define. The init would fail the same way inside the
// container, but only after the task had reported its ssh command. A file
// that the driver cannot read with certainty is left to the init.
func checkContainerUser(ctx context.Context, docker *client.Client, containerID, user string, logger hclog.Logger) error {
	name, group, hasGroup := strings.Cut(user, ":")
	if !isNumeric(name) {
		if err := requireAccount(ctx, docker, containerID, passwdFile, name, user, logger); err != nil {
			return err
		}
	}
	if hasGroup && !isNumeric(group) {
		if err := requireAccount(ctx, docker, containerID, groupFile, group, user, logger); err != nil {
			return err
		}
	}
	return nil
}

// requireAccount fails unless the container's file has an entry for name.
func requireAccount(ctx context.Context, docker *client.Client, containerID string, file accountFile, name, user string, logger hclog.Logger) error {
	found, err := accountFileHas(ctx, docker, containerID, file, name)
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("the container user %q names the %s %q, but the image has no %s; add it to the image, or set the task's user to numeric IDs such as \"1000:1000\"", user, file.kind, name, file.path)
	case errors.Is(err, errAccountFileUnchecked):
		// only a missing file or entry is certain; the init checks the rest
		logger.Debug("the container user is left to the init to check", "container_id", containerID, "path", file.path, "reason", err)
		return nil
	case err != nil:
		logger.Warn("failed to read an account file of the image, so the container user is left to the init to check", "container_id", containerID, "path", file.path, "error", err)
		return nil
	case !found:
		return fmt.Errorf("the container user %q names the %s %q, which the image's %s does not define; add it to the image, or set the task's user to numeric IDs such as \"1000:1000\"", user, file.kind, name, file.path)
	}
	return nil
}

// accountFileHas reports whether the container's file has an entry for
// name. The engine resolves a symbolic link at the path, and in the
// folders above it, inside the container, as the init's open would.
func accountFileHas(ctx context.Context, docker *client.Client, containerID string, file accountFile, name string) (bool, error) {
	stat, err := docker.ContainerStatPath(ctx, containerID, file.path)
	if err != nil {
		return false, err
	}
	target := file.path
	if stat.LinkTarget != "" {
		target = stat.LinkTarget
	}

	header, body, err := copyOneFile(ctx, docker, containerID, target)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", errAccountFileUnchecked, target, err)
	}
	defer body.Close()
	switch {
	case header.Typeflag != tar.TypeReg:
		return false, fmt.Errorf("%w: %s is not a regular file", errAccountFileUnchecked, target)
	case header.Size > maxAccountFileSize:
		return false, fmt.Errorf("%w: %s has %d bytes, more than the %d that the driver reads", errAccountFileUnchecked, target, header.Size, maxAccountFileSize)
	}
	return file.has(body, name)
}

// copyOneFile returns the tar header of the file at containerPath and a
// reader of its content, which the caller closes.
func copyOneFile(ctx context.Context, docker *client.Client, containerID, containerPath string) (*tar.Header, io.ReadCloser, error) {
	content, _, err := docker.CopyFromContainer(ctx, containerID, containerPath)
	if err != nil {
		return nil, nil, err
	}
	archive := tar.NewReader(content)
	header, err := archive.Next()
	if err != nil {
		content.Close()
		return nil, nil, fmt.Errorf("read the tar header of %s: %w", containerPath, err)
	}
	return header, struct {
		io.Reader
		io.Closer
	}{io.LimitReader(archive, maxAccountFileSize), content}, nil
}

// has reports whether content has a valid entry for name. It reads the
// file as Go's os/user does in the init. Spaces around a line do not count.
// Blank lines, comments, lines with too few fields, non-numeric IDs and NIS
// entries that start with "+" or "-" are skipped.
func (f accountFile) has(content io.Reader, name string) (bool, error) {
	reader := bufio.NewReader(content)
	for {
		line, err := reader.ReadString('\n')
		if f.matches(strings.TrimSpace(line), name) {
			return true, nil
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func (f accountFile) matches(line, name string) bool {
	if line == "" || line[0] == '#' || strings.Count(line, ":") < f.colons {
		return false
	}
	fields := strings.Split(line, ":")
	first := fields[0]
	if first == "" || first != name || first[0] == '+' || first[0] == '-' {
		return false
	}
	for _, i := range f.ids {
		if _, err := strconv.Atoi(fields[i]); err != nil {
			return false
		}
	}
	return true
}

func isNumeric(value string) bool {
	_, err := strconv.ParseUint(value, 10, 32)
	return err == nil
}
