package driver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// taskHandle tracks one task's container.
type taskHandle struct {
	containerID string
	taskConfig  *drivers.TaskConfig
	state       TaskState
	docker      *client.Client
	logger      hclog.Logger

	// emit sends a driver event for the task.
	emit func(message string, details map[string]string)

	// emitReady sends the ready event, with the ssh command, for state.
	emitReady func(state *SSHState)

	// fifos are the log fifos that StartTask opened; nil for a recovered
	// task, whose streamer opens them.
	fifos *logFifos

	// logs copies the container's output into Nomad's log fifos; nil when
	// the task has no fifos.
	logs *logStreamer

	// doneCh is closed once exitResult is set.
	doneCh chan struct{}

	mu          sync.RWMutex
	taskState   drivers.TaskState
	completedAt time.Time
	exitResult  *drivers.ExitResult
}

func newTaskHandle(cfg *drivers.TaskConfig, state TaskState, docker *client.Client, logger hclog.Logger) *taskHandle {
	return &taskHandle{
		containerID: state.ContainerID,
		taskConfig:  cfg,
		state:       state,
		docker:      docker,
		logger:      logger.With("container_id", state.ContainerID, "alloc_id", cfg.AllocID, "task_name", cfg.Name),
		doneCh:      make(chan struct{}),
		taskState:   drivers.TaskStateRunning,
	}
}

// logDrainTimeout bounds how long an exited task waits for the rest of its
// output to reach Nomad's log fifos.
const logDrainTimeout = 30 * time.Second

// run streams the logs, waits for the container to stop and records its
// exit. ctx is the plugin's context: when the plugin shuts down, run
// returns without a result, and the next plugin process recovers the task.
func (h *taskHandle) run(ctx context.Context) {
	h.logs = startLogStreamer(ctx, h.docker, h.containerID, h.fifos, h.taskConfig.StdoutPath, h.taskConfig.StderrPath,
		logPositionPath(h.taskConfig.TaskDir().Dir), h.logger)

	// turn the init's SSH events into task events until the exit
	exited := make(chan struct{})
	tailerDone := make(chan struct{})
	h.mu.RLock()
	hasSSH := h.state.SSH != nil
	h.mu.RUnlock()
	if hasSSH && h.emit != nil {
		tailer := newSessionEventTailer(h.taskConfig.TaskDir().Dir, h.withReadyRepeats(h.emit), h.logger)
		go func() {
			defer close(tailerDone)
			tailer.run(ctx, exited)
		}()
	} else {
		close(tailerDone)
	}

	result := h.wait(ctx)
	close(exited)
	if result == nil {
		return
	}
	<-tailerDone

	// report the exit only after the last lines reached the log fifos, so
	// that a task that prints and exits at once keeps its output
	if h.logs != nil {
		select {
		case <-h.logs.done:
		case <-time.After(logDrainTimeout):
			h.logger.Warn("the container's logs did not finish streaming; the rest of its output is lost", "timeout", logDrainTimeout)
			h.logs.cancel()
		case <-ctx.Done():
			return
		}
	}

	h.mu.Lock()
	h.taskState = drivers.TaskStateExited
	h.completedAt = time.Now()
	h.exitResult = result
	h.mu.Unlock()
	close(h.doneCh)

	h.logger.Info("container exited", "exit_code", result.ExitCode, "oom_killed", result.OOMKilled, "error", result.Err)
}

func (h *taskHandle) status() *drivers.TaskStatus {
	h.mu.RLock()
	defer h.mu.RUnlock()

	attrs := map[string]string{"container_id": h.containerID}
	if h.state.SSH != nil {
		attrs["ssh_host"] = h.state.SSH.Host
		attrs["ssh_port"] = fmt.Sprint(h.state.SSH.Port)
	}
	return &drivers.TaskStatus{
		ID:               h.taskConfig.ID,
		Name:             h.taskConfig.Name,
		State:            h.taskState,
		StartedAt:        h.state.StartedAt,
		CompletedAt:      h.completedAt,
		ExitResult:       h.exitResult.Copy(),
		DriverAttributes: attrs,
	}
}

func (h *taskHandle) isRunning() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.taskState == drivers.TaskStateRunning
}

func (h *taskHandle) result() *drivers.ExitResult {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.exitResult.Copy()
}

// readyRepeatAfter is how many session events may follow the ready event
// before the handle sends it again. Nomad v1.6.3 keeps only the last 10
// events of a task, and each SSH login adds two, so without a repeat the
// ssh command would drop out of the task's events after five logins.
const readyRepeatAfter = 6

// withReadyRepeats returns emit, which also sends the ready event again
// after every readyRepeatAfter session events, until SSH has closed. Other
// events do not count. Only the tailer's goroutine calls it.
func (h *taskHandle) withReadyRepeats(emit func(string, map[string]string)) func(string, map[string]string) {
	if h.emitReady == nil {
		return emit
	}
	count := 0
	closed := false
	return func(message string, details map[string]string) {
		emit(message, details)
		switch details["ssh_event"] {
		case sshserver.EventSessionOpened, sshserver.EventSessionClosed:
		case sshserver.EventHoldEnded:
			closed = true
			return
		default:
			return
		}
		count++
		if closed || count < readyRepeatAfter {
			return
		}
		count = 0

		h.mu.RLock()
		var state *SSHState
		if h.state.SSH != nil {
			copied := *h.state.SSH
			state = &copied
		}
		h.mu.RUnlock()
		if state != nil {
			h.emitReady(state)
		}
	}
}
