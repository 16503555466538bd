package driver

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// WaitTask returns a channel that receives the task's exit once the
// container stops.
func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}

	ch := make(chan *drivers.ExitResult, 1)
	go func() {
		defer close(ch)
		select {
		case <-h.doneCh:
			ch <- h.result()
		case <-ctx.Done():
		case <-d.ctx.Done():
		}
	}()
	return ch, nil
}

// StopTask sends signal (SIGTERM when empty) to the container's init,
// which forwards it to the job, and kills the container when it is still
// running after timeout. The driver sends the signal itself rather than
// pass it to the engine's stop call, because engines before API 1.42
// (Docker 23.0), such as Docker 20.10, ignore a stop call's signal.
func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if signal == "" {
		signal = "SIGTERM"
	}
	if !h.isRunning() {
		return nil
	}

	ctx, cancel := context.WithTimeout(d.ctx, timeout+dockerCallTimeout)
	defer cancel()

	h.logger.Debug("stopping container", "signal", signal, "timeout", timeout)
	err := h.docker.ContainerKill(ctx, h.containerID, strings.ToUpper(signal))
	if err != nil && !isGone(err) {
		return fmt.Errorf("failed to send %s to container %s: %w", signal, h.containerID, err)
	}

	select {
	case <-h.doneCh:
		return nil
	case <-time.After(timeout):
	case <-d.ctx.Done():
		return d.ctx.Err()
	}

	h.logger.Info("container still running after the kill timeout, killing it", "timeout", timeout)
	err = h.docker.ContainerKill(ctx, h.containerID, "SIGKILL")
	if err != nil && !isGone(err) {
		return fmt.Errorf("failed to kill container %s: %w", h.containerID, err)
	}
	return nil
}

// isGone reports whether err means that the container no longer exists or
// is not running, which a stop treats as done.
func isGone(err error) bool {
	return cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err)
}

// DestroyTask removes the container. A running task is an error unless
// force is set, which kills it first.
func (d *Driver) DestroyTask(taskID string, force bool) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if h.isRunning() && !force {
		return fmt.Errorf("task %s is still running; stop it first or destroy it with force", taskID)
	}

	ctx, cancel := context.WithTimeout(d.ctx, dockerCallTimeout)
	defer cancel()
	err := h.docker.ContainerRemove(ctx, h.containerID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("failed to remove container %s: %w", h.containerID, err)
	}

	h.logger.Info("container removed")
	d.tasks.Delete(taskID)
	return nil
}

// InspectTask returns the task's state, timestamps and exit.
func (d *Driver) InspectTask(taskID string) (*drivers.TaskStatus, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.status(), nil
}

// SignalTask sends signal to the container's init, which forwards it to
// the job's process.
func (d *Driver) SignalTask(taskID string, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if signal == "" {
		return fmt.Errorf("no signal given; name one, for example SIGUSR1")
	}

	ctx, cancel := context.WithTimeout(d.ctx, dockerCallTimeout)
	defer cancel()
	if err := h.docker.ContainerKill(ctx, h.containerID, strings.ToUpper(signal)); err != nil {
		return fmt.Errorf("failed to send %s to container %s: %w", signal, h.containerID, err)
	}
	return nil
}
