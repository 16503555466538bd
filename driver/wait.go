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

// engineRetryInterval is how often a task's handle queries an unreachable
// Docker engine again about the container.
const engineRetryInterval = time.Second

// engineDialTimeout bounds the check whether the engine accepts new
// connections.
const engineDialTimeout = 5 * time.Second

// wait returns the container's exit, or nil when ctx ends first.
//
// The engine may stop or restart while the container runs. The handle then
// polls until the engine responds again. A container that a live-restore
// engine kept running is waited on again, and one that stopped meanwhile
// is reported with an error that names the engine as the cause.
//
// NOTE: while the engine stays unreachable the task stays running in
// Nomad, because the driver cannot tell whether the container still runs.
func (h *taskHandle) wait(ctx context.Context) *drivers.ExitResult {
	for {
		statusCode, err := h.waitNotRunning(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			return h.exitAfterWait(ctx, statusCode)
		}
		if cerrdefs.IsNotFound(err) {
			return h.removedResult()
		}

		h.logger.Warn("lost the connection to the Docker engine while waiting on the container, retrying until it responds",
			"docker_endpoint", h.docker.DaemonHost(), "error", err)
		if result := h.awaitEngine(ctx); result != nil || ctx.Err() != nil {
			return result
		}
	}
}

// waitNotRunning blocks until the engine reports that the container
// stopped, and returns its exit code.
func (h *taskHandle) waitNotRunning(ctx context.Context) (int64, error) {
	statusCh, errCh := h.docker.ContainerWait(ctx, h.containerID, container.WaitConditionNotRunning)
	select {
	case status := <-statusCh:
		// the engine ends a wait with an error, not an exit, when the
		// wait itself failed
		if status.Error != nil && status.Error.Message != "" {
			return 0, fmt.Errorf("the engine ended the wait on container %s: %s", h.containerID, status.Error.Message)
		}
		return status.StatusCode, nil
	case err := <-errCh:
		return 0, err
	}
}

// exitAfterWait builds the exit of a container that the engine reported
// stopped with statusCode. Docker Engine 20.10, which the engine restart
// tests run, closes its API socket to new connections before it stops its
// containers on shutdown. So a container that stops while the socket
// rejects connections was stopped by the shutdown.
func (h *taskHandle) exitAfterWait(ctx context.Context, statusCode int64) *drivers.ExitResult {
	info, inspectErr := h.docker.ContainerInspect(ctx, h.containerID)
	if ctx.Err() != nil {
		return nil
	}
	if cerrdefs.IsNotFound(inspectErr) {
		return h.removedResult()
	}

	var result *drivers.ExitResult
	if inspectErr == nil {
		result = exitResultFromState(info.State)
	} else {
		// the wait's exit code replaces the state that the inspect would
		// have returned
		result = &drivers.ExitResult{ExitCode: int(statusCode)}
	}

	if dialErr := h.dialEngine(ctx); dialErr != nil {
		h.logger.Warn("the container stopped while the Docker engine rejects connections",
			"docker_endpoint", h.docker.DaemonHost(), "exit_code", result.ExitCode, "error", dialErr)
		result.Err = h.engineStoppedError(false, result.Err)
		return result
	}
	if inspectErr != nil {
		result.Err = fmt.Errorf("failed to inspect exited container %s: %w", h.containerID, inspectErr)
	}
	return result
}

// awaitEngine polls the engine until it responds about the container. It
// returns the container's exit when the container stopped or was removed
// meanwhile, and nil when it still runs or ctx ended.
func (h *taskHandle) awaitEngine(ctx context.Context) *drivers.ExitResult {
	lostAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(engineRetryInterval):
		}

		info, err := h.docker.ContainerInspect(ctx, h.containerID)
		switch {
		case ctx.Err() != nil:
			return nil
		case cerrdefs.IsNotFound(err):
			return h.removedResult()
		case err != nil:
			h.logger.Debug("the Docker engine is still unreachable", "error", err)
			continue
		}

		outage := time.Since(lostAt).Round(time.Millisecond)
		if info.State != nil && info.State.Running {
			h.logger.Info("the Docker engine responds again and the container still runs", "outage", outage)
			return nil
		}
		liveRestore := h.engineLiveRestore(ctx)
		h.logger.Info("the Docker engine responds again, but the container stopped meanwhile",
			"outage", outage, "live_restore", liveRestore)
		result := exitResultFromState(info.State)
		result.Err = h.engineStoppedError(liveRestore, result.Err)
		return result
	}
}

// dialEngine opens a new connection to the engine and closes it again. The
// client's idle connections stay usable while an engine shuts down, so
// only a new connection shows whether the engine still accepts requests.
func (h *taskHandle) dialEngine(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, engineDialTimeout)
	defer cancel()
	conn, err := h.docker.Dialer()(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}

// engineLiveRestore reports whether the engine keeps containers running
// while it is down. It returns false when the engine cannot be queried.
func (h *taskHandle) engineLiveRestore(ctx context.Context) bool {
	info, err := h.docker.Info(ctx)
	if err != nil {
		h.logger.Warn("failed to read the Docker engine's live-restore setting", "error", err)
		return false
	}
	return info.LiveRestoreEnabled
}

// engineStoppedError returns the exit error of a container that stopped
// while the engine was shutting down, restarting or unreachable. An engine
// with live-restore leaves its containers running, so with liveRestore the
// container stopped by itself and the error names only the outage. cause
// is the error that the engine reported for the container, or nil.
func (h *taskHandle) engineStoppedError(liveRestore bool, cause error) error {
	var err error
	if liveRestore {
		err = fmt.Errorf("container %s stopped while the Docker engine at %s was unreachable", h.containerID, h.docker.DaemonHost())
	} else {
		err = fmt.Errorf("container %s stopped while the Docker engine at %s was shutting down or restarting. "+
			`An engine without live-restore stops its containers when it shuts down; set "live-restore": true in the engine's daemon.json to keep tasks running across engine restarts`,
			h.containerID, h.docker.DaemonHost())
	}
	if cause != nil {
		return fmt.Errorf("%w. The engine reported: %w", err, cause)
	}
	return err
}

func (h *taskHandle) removedResult() *drivers.ExitResult {
	return &drivers.ExitResult{ExitCode: -1, Err: fmt.Errorf("container %s was removed outside Nomad", h.containerID)}
}

// exitResultFromState reads the exit code, the OOM flag and the engine's
// error from an inspected container's state. The wait response does not
// carry the OOM flag on older engines.
func exitResultFromState(state *container.State) *drivers.ExitResult {
	if state == nil {
		return &drivers.ExitResult{ExitCode: -1, Err: errors.New("the engine returned no container state")}
	}
	result := &drivers.ExitResult{
		ExitCode:  state.ExitCode,
		OOMKilled: state.OOMKilled,
	}
	if state.Error != "" {
		result.Err = errors.New(state.Error)
	}
	return result
}
