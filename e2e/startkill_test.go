//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/hashicorp/nomad/api"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// restartJob is a batch job with one SSH task that runs until it is
// stopped. Its format verbs take the job ID and the restart attempts. The
// job is never rescheduled, so that every container of the job belongs to
// its one allocation.
const restartJob = `
variable "authorized_key" {
  type = string
}

job %q {
  datacenters = ["*"]
  type        = "batch"

  group "g" {
    network {
      port "ssh" {}
    }

    restart {
      attempts = %d
      delay    = "1s"
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "work" {
      driver = "sshrerun"

      config {
        image   = "nomad-driver-sshrerun/busybox:local"
        command = "/bin/sh"
        args    = ["-c", "while :; do sleep 1; done"]

        ssh {
          port            = "ssh"
          authorized_keys = [var.authorized_key]
        }
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
`

// labelJobID is the container label that names the Nomad job.
const labelJobID = "nomad-driver-sshrerun.job_id"

// pluginKill is one SIGKILL of the plugin on a container create event.
type pluginKill struct {
	pid         int
	containerID string
	allocID     string

	// status is the container's state, inspected right after the kill. It
	// is "created" when the kill landed before ContainerStart, and
	// "running" when it landed after.
	status string
}

// killPluginOnCreate watches the engine's events for the creation of the
// job's containers and kills the plugin process at each of the first
// count creates. It returns a channel that receives each kill, and closes
// after the last one or when ctx ends. The stream starts at the current
// second, so a create that happens before the engine serves the request
// is replayed and not missed.
func (e *env) killPluginOnCreate(t *testing.T, ctx context.Context, jobID string, count int) <-chan pluginKill {
	t.Helper()
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionCreate)),
		filters.Arg("label", labelJobID+"="+jobID),
	)
	since := strconv.FormatInt(time.Now().Unix(), 10)
	messages, errs := e.docker.Events(ctx, events.ListOptions{Since: since, Filters: args})

	kills := make(chan pluginKill, count)
	go func() {
		defer close(kills)
		for i := 0; i < count; i++ {
			var message events.Message
			select {
			case message = <-messages:
			case err := <-errs:
				t.Errorf("the engine's event stream ended: %v", err)
				return
			case <-ctx.Done():
				return
			}

			// kill first, then look at what the plugin had done
			pids, err := e.agent.PluginPIDs()
			if err != nil || len(pids) != 1 {
				t.Errorf("expected one plugin process under agent pid %d, found %v (%v)", e.agent.PID(), pids, err)
				return
			}
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				t.Errorf("failed to kill plugin pid %d: %v", pids[0], err)
				return
			}

			kill := pluginKill{pid: pids[0], containerID: message.Actor.ID, allocID: message.Actor.Attributes[harness.ContainerLabelAllocID]}
			info, err := e.docker.ContainerInspect(ctx, message.Actor.ID)
			switch {
			case cerrdefs.IsNotFound(err):
				kill.status = "removed"
			case err != nil:
				kill.status = "unknown: " + err.Error()
			default:
				kill.status = info.State.Status
			}
			kills <- kill
		}
	}()
	return kills
}

// waitForKill returns the next kill, failing the test when none comes.
func waitForKill(t *testing.T, ctx context.Context, kills <-chan pluginKill) pluginKill {
	t.Helper()
	select {
	case kill, ok := <-kills:
		require.True(t, ok, "the event watcher stopped before the kill")
		t.Logf("killed plugin pid %d on the create event of container %s (alloc %s); the container was %q right after the kill, so the kill landed %s ContainerStart",
			kill.pid, kill.containerID, kill.allocID, kill.status, startWindow(kill.status))
		return kill
	case <-ctx.Done():
		t.Fatal("no container of the job was created")
		return pluginKill{}
	}
}

// startWindow places a kill relative to ContainerStart from the
// container's state right after it.
func startWindow(status string) string {
	switch status {
	case "created":
		return "before"
	case "running", "exited":
		return "after"
	default:
		return "at an unknown point relative to"
	}
}

// waitForNewPlugin polls until the agent runs one plugin process that is
// not killedPID.
func (e *env) waitForNewPlugin(t *testing.T, ctx context.Context, killedPID int) int {
	t.Helper()
	for {
		pids, err := e.agent.PluginPIDs()
		require.NoError(t, err)
		if len(pids) == 1 && pids[0] != killedPID {
			return pids[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Nomad did not start the plugin again after pid %d was killed; running: %v", killedPID, pids)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// registerRestartJob registers restartJob and removes the containers of
// its allocations when the test ends.
func (e *env) registerRestartJob(t *testing.T, jobID string, attempts int) {
	t.Helper()
	_, err := e.agent.RunJobHCL(fmt.Sprintf(restartJob, jobID, attempts), fmt.Sprintf("authorized_key = %q\n", e.key.AuthorizedKey))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		stubs, _, _ := e.agent.Client.Jobs().Allocations(jobID, true, nil)
		for _, stub := range stubs {
			_ = harness.RemoveContainers(ctx, e.docker, stub.ID)
		}
	})
}

// taskEventsSummary returns the task's events, one per line, for the log.
func (e *env) taskEventsSummary(allocID, taskName string) string {
	alloc, _, err := e.agent.Client.Allocations().Info(allocID, nil)
	if err != nil {
		return err.Error()
	}
	state := alloc.TaskStates[taskName]
	if state == nil {
		return "no task state"
	}
	lines := make([]string, 0, len(state.Events))
	for _, event := range state.Events {
		lines = append(lines, fmt.Sprintf("  %s: %s", event.Type, event.DisplayMessage))
	}
	return strings.Join(lines, "\n")
}

// sshEcho logs in through the address of the ready event and runs echo.
func (e *env) sshEcho(t *testing.T, ctx context.Context, event *harness.ReadyEvent, text string) {
	t.Helper()
	port, err := strconv.Atoi(event.Details["ssh_port"])
	require.NoError(t, err)
	out, err := harness.SSHCommand(ctx, e.key, event.Details["ssh_user"], event.Details["ssh_host"], port, "echo", text).CombinedOutput()
	require.NoError(t, err, "ssh: %s", out)
	require.Equal(t, text+"\n", string(out))
}

// TestStartKill_OneContainerAfterRestart kills the plugin on the first
// create of the task's container, with and without restart attempts.
// Nomad 1.6.3 calls StartTask once more on the relaunched plugin when
// StartTask fails because the plugin exited, whatever the restart policy.
func TestStartKill_OneContainerAfterRestart(t *testing.T) {
	for _, attempts := range []int{1, 0} {
		t.Run(fmt.Sprintf("attempts=%d", attempts), func(t *testing.T) {
			e := newEnv(t, "")
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()

			jobID := "startkill-" + uuid.Short()
			kills := e.killPluginOnCreate(t, ctx, jobID, 1)
			e.registerRestartJob(t, jobID, attempts)
			kill := waitForKill(t, ctx, kills)
			newPID := e.waitForNewPlugin(t, ctx, kill.pid)
			t.Logf("Nomad started the plugin again as pid %d", newPID)

			// the task starts on the relaunched plugin and reports SSH
			allocID, event, err := e.agent.WaitForReady(ctx, jobID, "work")
			require.NoError(t, err)
			require.Equal(t, kill.allocID, allocID)
			_, err = e.agent.WaitForTaskState(ctx, allocID, "work", "running")
			require.NoError(t, err)
			t.Logf("task events:\n%s", e.taskEventsSummary(allocID, "work"))

			// one container for the task, and not the killed start's
			ids, err := harness.Containers(ctx, e.docker, allocID)
			require.NoError(t, err)
			require.Len(t, ids, 1, "containers of alloc %s", allocID)
			require.NotEqual(t, kill.containerID, ids[0])
			_, err = e.docker.ContainerInspect(ctx, kill.containerID)
			require.True(t, cerrdefs.IsNotFound(err), "the killed start's container %s still exists (%v)", kill.containerID, err)

			// Nomad retried StartTask itself: no failure and no restart, and
			// the retry removed the killed start's container by its name
			alloc, _, err := e.agent.Client.Allocations().Info(allocID, nil)
			require.NoError(t, err)
			state := alloc.TaskStates["work"]
			require.Zero(t, state.Restarts)
			require.False(t, hasTypedEvent(state.Events, api.TaskDriverFailure, ""), "the start failed")
			require.False(t, hasTypedEvent(state.Events, api.TaskRestarting, ""), "the task was restarted")
			e.requireAgentLog(t, "failed to start task because plugin shutdown unexpectedly; attempting to recover")
			e.requireAgentLog(t, "removing a container left by an earlier start of this task")

			e.sshEcho(t, ctx, event, "after-start-kill")

			require.NoError(t, e.agent.StopJob(jobID))
			require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, allocID))
		})
	}
}

// TestStartKill_TwiceLeavesOrphanThatIsRemoved kills the plugin in StartTask
// and again in the StartTask that Nomad retries. Nomad 1.6.3 retries only
// once, and then fails the task without a handle and without a restart,
// whatever the restart policy, because its error is unrecoverable. So the
// second start's container is an orphan until the driver's reconciler
// removes it, while a task that the plugin recovered keeps its container.
func TestStartKill_TwiceLeavesOrphanThatIsRemoved(t *testing.T) {
	cases := []struct {
		attempts int
		reason   string // Nomad's reason not to restart
	}{
		{0, "Policy allows no restarts"},
		{1, "Error was unrecoverable"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("attempts=%d", tc.attempts), func(t *testing.T) {
			e := newEnv(t, "")
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()

			// a running task, which the relaunched plugin recovers and
			// learns the client's alloc root from
			otherID := "startkill-other-" + uuid.Short()
			e.registerRestartJob(t, otherID, 0)
			otherAlloc, event, err := e.agent.WaitForReady(ctx, otherID, "work")
			require.NoError(t, err)
			others, err := harness.Containers(ctx, e.docker, otherAlloc)
			require.NoError(t, err)
			require.Len(t, others, 1)

			jobID := "startkill-twice-" + uuid.Short()
			kills := e.killPluginOnCreate(t, ctx, jobID, 2)
			e.registerRestartJob(t, jobID, tc.attempts)
			first := waitForKill(t, ctx, kills)
			second := waitForKill(t, ctx, kills)
			require.Equal(t, first.allocID, second.allocID)
			newPID := e.waitForNewPlugin(t, ctx, second.pid)
			t.Logf("Nomad started the plugin again as pid %d", newPID)

			// the task fails with no handle, and the second start's
			// container remains
			state, err := e.agent.WaitForTaskState(ctx, second.allocID, "work", "dead")
			require.NoError(t, err)
			require.True(t, state.Failed)
			t.Logf("task events:\n%s", e.taskEventsSummary(second.allocID, "work"))
			require.True(t, hasTypedEvent(state.Events, api.TaskDriverFailure, "failed to start task after driver exited unexpectedly"),
				"no driver failure event for the retried start")
			require.True(t, hasTypedEvent(state.Events, api.TaskNotRestarting, tc.reason), "no %q event", tc.reason)
			require.Zero(t, state.Restarts)
			e.requireAgentLog(t, "failed to start task because plugin shutdown unexpectedly; attempting to recover")
			ids, err := harness.Containers(ctx, e.docker, second.allocID)
			require.NoError(t, err)
			require.Equal(t, []string{second.containerID}, ids, "the second start's container is the orphan")

			// the reconciler removes the orphan once the grace of 1 minute
			// after the plugin's start has passed, at its next pass
			removeCtx, cancelRemove := context.WithTimeout(ctx, 3*time.Minute)
			defer cancelRemove()
			require.NoError(t, harness.WaitForNoContainers(removeCtx, e.docker, second.allocID))
			e.requireAgentLog(t, "removed a container that no task handle tracks")

			// the recovered task keeps its container, and SSH logs in
			now, err := harness.Containers(ctx, e.docker, otherAlloc)
			require.NoError(t, err)
			require.Equal(t, others, now, "the recovered task's container changed")
			e.sshEcho(t, ctx, event, "recovered-task-kept")
			ts, err := e.agent.WaitForTaskState(ctx, otherAlloc, "work", "running")
			require.NoError(t, err)
			require.Zero(t, ts.Restarts)

			require.NoError(t, e.agent.StopJob(otherID))
			require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, otherAlloc))
		})
	}
}

// requireAgentLog fails the test unless the agent's log, which contains
// the plugin's log too, contains text.
func (e *env) requireAgentLog(t *testing.T, text string) {
	t.Helper()
	found, err := e.agent.LogContains(text)
	require.NoError(t, err)
	require.True(t, found, "the agent log %s has no line with %q", e.agent.LogPath, text)
}

// hasTypedEvent reports whether events has an event of eventType whose
// message contains text.
func hasTypedEvent(events []*api.TaskEvent, eventType, text string) bool {
	for _, event := range events {
		if event.Type == eventType && strings.Contains(event.DisplayMessage, text) {
			return true
		}
	}
	return false
}
