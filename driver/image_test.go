package driver

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// newRegistry starts a registry on 127.0.0.1 with user "ci" and pushes the
// test image into it under a fresh name, which is not present locally.
func newRegistry(t *testing.T, d *testDriver) (*harness.Registry, string) {
	t.Helper()
	_, err := os.Stat(harness.RegistryBinary())
	require.NoError(t, err, "missing the registry: run `make tools`")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	registry, err := harness.StartRegistry(ctx, t.TempDir(), "ci", "s3cret")
	require.NoError(t, err)
	t.Cleanup(func() { _ = registry.Stop(10 * time.Second) })

	ref := fmt.Sprintf("%s/sshrerun/busybox:%s", registry.Address, uuid.Short())
	require.NoError(t, registry.PushImage(ctx, d.docker, testImage, ref))
	t.Cleanup(func() {
		_, _ = d.docker.ImageRemove(context.Background(), ref, image.RemoveOptions{})
	})
	return registry, ref
}

// collectEvents returns the messages of the task events that arrive on
// events until ctx ends or stop reports true.
func eventMessages(ctx context.Context, events <-chan *drivers.TaskEvent, taskID string, stop func(string) bool) []string {
	var messages []string
	for {
		select {
		case event := <-events:
			if event.TaskID != taskID {
				continue
			}
			messages = append(messages, event.Message)
			if stop(event.Message) {
				return messages
			}
		case <-ctx.Done():
			return messages
		}
	}
}

func TestImage_PullWithCredentials(t *testing.T) {
	d := newTestDriver(t, nil)
	registry, ref := newRegistry(t, d)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := d.TaskEvents(ctx)
	require.NoError(t, err)

	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   ref,
		Command: "/bin/sh",
		Args:    []string{"-c", "exit 0"},
		Auth:    &AuthConfig{Username: registry.Username, Password: registry.Password},
	})
	d.startTask(t, task)

	messages := eventMessages(ctx, events, task.ID, func(m string) bool { return strings.HasPrefix(m, "Downloaded image") })
	require.Contains(t, messages, "Downloading image "+ref)
	require.True(t, strings.HasPrefix(messages[len(messages)-1], "Downloaded image "+ref), "events: %q", messages)

	result := d.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 0, result.ExitCode)
}

func TestImage_ForcePullWhenPresent(t *testing.T) {
	d := newTestDriver(t, nil)
	registry, ref := newRegistry(t, d)
	require.NoError(t, d.docker.ImageTag(context.Background(), testImage, ref))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := d.TaskEvents(ctx)
	require.NoError(t, err)

	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:     ref,
		Command:   "/bin/true",
		ForcePull: true,
		Auth:      &AuthConfig{Username: registry.Username, Password: registry.Password},
	})
	d.startTask(t, task)

	messages := eventMessages(ctx, events, task.ID, func(m string) bool { return strings.HasPrefix(m, "Downloaded image") })
	require.Contains(t, messages, "Downloading image "+ref)
}

func TestImage_PullWithWrongCredentials(t *testing.T) {
	d := newTestDriver(t, nil)
	registry, ref := newRegistry(t, d)

	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   ref,
		Command: "/bin/true",
		Auth:    &AuthConfig{Username: registry.Username, Password: "wrong"},
	})
	d.mkAllocDir(t, task, false)

	_, _, err := d.StartTask(task)
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("failed to pull image %q", ref))
	require.Contains(t, err.Error(), "unauthorized")
	require.Contains(t, err.Error(), "check the image name, that the registry is reachable from this client, and the task's auth block")
}

func TestImage_MissingWithRegistryUnreachable(t *testing.T) {
	d := newTestDriver(t, nil)
	// nothing listens on the port, so the pull fails at once
	port, err := harness.FreePort()
	require.NoError(t, err)
	ref := fmt.Sprintf("127.0.0.1:%d/sshrerun/absent:%s", port, uuid.Short())

	task := newTask(t, freeSSHPort(t), &TaskConfig{Image: ref, Command: "/bin/true"})
	d.mkAllocDir(t, task, false)

	_, _, err = d.StartTask(task)
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("failed to pull image %q", ref))
	require.Contains(t, err.Error(), "connection refused")
}
