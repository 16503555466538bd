package driver

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// RecoverTask rebuilds a task's handle from the driver state that Nomad
// stored, after the agent or the plugin restarted. A container that exited
// meanwhile is reported with its real exit code by the handle's wait.
func (d *Driver) RecoverTask(handle *drivers.TaskHandle) error {
	if handle == nil {
		return fmt.Errorf("no task handle to recover")
	}
	d.learnAllocRoot(handle.Config.AllocDir)
	if _, ok := d.tasks.Get(handle.Config.ID); ok {
		return nil
	}

	var state TaskState
	if err := handle.GetDriverState(&state); err != nil {
		return fmt.Errorf("failed to decode the driver state of task %s: %w", handle.Config.ID, err)
	}
	if state.ContainerID == "" {
		return fmt.Errorf("the driver state of task %s has no container ID", handle.Config.ID)
	}

	_, docker, _, err := d.state()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(d.ctx, dockerCallTimeout)
	defer cancel()
	if _, err := docker.ContainerInspect(ctx, state.ContainerID); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("container %s of task %s no longer exists: %w", state.ContainerID, handle.Config.ID, err)
		}
		return fmt.Errorf("failed to inspect container %s of task %s: %w", state.ContainerID, handle.Config.ID, err)
	}

	h := newTaskHandle(handle.Config, state, docker, d.logger)
	h.emit = d.taskEmitter(handle.Config)
	h.emitReady = func(state *SSHState) { d.emitReady(handle.Config, state) }
	d.tasks.Set(handle.Config.ID, h)
	go h.run(d.ctx)
	h.logger.Info("task recovered")
	return nil
}
