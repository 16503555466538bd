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
)

// maxAccountFileSize bounds how much of /etc/passwd or /etc/group the
// driver reads from an image.
const maxAccountFileSize = 4 << 20

// checkContainerUser fails when user, in Docker's "user[:group]" form,
// names a user or group that the created container's /etc/passwd or
// /etc/group does not define. The init would fail the same way inside the
// container, but only after the task had reported its ssh command.
func checkContainerUser(ctx context.Context, docker *client.Client, containerID, user string) error {
	name, group, hasGroup := strings.Cut(user, ":")
	if !isNumeric(name) {
		if err := requireAccount(ctx, docker, containerID, "/etc/passwd", "user", name, user); err != nil {
			return err
		}
	}
	if hasGroup && !isNumeric(group) {
		if err := requireAccount(ctx, docker, containerID, "/etc/group", "group", group, user); err != nil {
			return err
		}
	}
	return nil
}

// requireAccount fails unless the container's file at path has a line
// whose first field is name.
func requireAccount(ctx context.Context, docker *client.Client, containerID, path, kind, name, user string) error {
	found, err := accountFileHas(ctx, docker, containerID, path, name)
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("the container user %q names the %s %q, but the image has no %s; add it to the image, or set the task's user to numeric IDs such as \"1000:1000\"", user, kind, name, path)
	case err != nil:
		return fmt.Errorf("failed to read %s of the image to check the container user %q: %w", path, user, err)
	case !found:
		return fmt.Errorf("the container user %q names the %s %q, which the image's %s does not define; add it to the image, or set the task's user to numeric IDs such as \"1000:1000\"", user, kind, name, path)
	}
	return nil
}

// accountFileHas reports whether the container's file at path, in the
// format of /etc/passwd, has an entry for name.
func accountFileHas(ctx context.Context, docker *client.Client, containerID, path, name string) (bool, error) {
	content, _, err := docker.CopyFromContainer(ctx, containerID, path)
	if err != nil {
		return false, err
	}
	defer content.Close()

	archive := tar.NewReader(content)
	header, err := archive.Next()
	if err != nil {
		return false, fmt.Errorf("failed to read %s from the container: %w", path, err)
	}
	if header.Typeflag != tar.TypeReg {
		return false, errors.New(path + " is not a regular file")
	}
	return hasAccount(io.LimitReader(archive, maxAccountFileSize), name)
}

// hasAccount reports whether a file in the format of /etc/passwd or
// /etc/group has a line whose first field is name.
func hasAccount(file io.Reader, name string) (bool, error) {
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		first, _, _ := strings.Cut(scanner.Text(), ":")
		if first == name {
			return true, nil
		}
	}
	return false, scanner.Err()
}

func isNumeric(value string) bool {
	_, err := strconv.ParseUint(value, 10, 32)
	return err == nil
}
