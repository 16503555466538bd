package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// wait returns the container's exit, or nil when ctx ends first.
func (h *taskHandle) wait(ctx context.Context) *drivers.ExitResult {
	for {
		statusCh, errCh := h.docker.ContainerWait(ctx, h.containerID, container.WaitConditionNotRunning)
		select {
		case <-statusCh:
			return h.inspectExit(ctx)
		case err := <-errCh:
			if ctx.Err() != nil {
				return nil
			}
			if cerrdefs.IsNotFound(err) {
				return &drivers.ExitResult{ExitCode: -1, Err: fmt.Errorf("container %s was removed outside Nomad", h.containerID)}
			}

			// the engine may be restarting: try again until ctx ends
			h.logger.Warn("failed to wait on the container, retrying", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// inspectExit reads the exit code and the OOM flag, which the wait
// response does not carry on older engines.
func (h *taskHandle) inspectExit(ctx context.Context) *drivers.ExitResult {
	info, err := h.docker.ContainerInspect(ctx, h.containerID)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &drivers.ExitResult{ExitCode: -1, Err: fmt.Errorf("failed to inspect exited container %s: %w", h.containerID, err)}
	}
	if info.State == nil {
		return &drivers.ExitResult{ExitCode: -1, Err: errors.New("the engine returned no container state")}
	}

	result := &drivers.ExitResult{
		ExitCode:  info.State.ExitCode,
		OOMKilled: info.State.OOMKilled,
	}
	if info.State.Error != "" {
		result.Err = errors.New(info.State.Error)
	}
	return result
}
