//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// lifecycleScript prints to both streams, traps SIGUSR1, prints "said N"
// each time /tmp/say appears, and exits with code 3 once /tmp/finish
// appears.
const lifecycleScript = `trap 'echo got-usr1 > /tmp/usr1' USR1
echo out-1
echo err-1 >&2
n=0
while [ ! -e /tmp/finish ]; do
  if [ -e /tmp/say ]; then n=$((n+1)); echo said $n; rm /tmp/say; fi
  sleep 0.1
done
exit 3
`

// lifecycleJob returns a batch job that runs lifecycleScript, with no
// wait for an SSH connection after it exits.
func lifecycleJob(jobID string) string {
	return fmt.Sprintf(holdJob, jobID, lifecycleScript, "0s", "2h")
}

// runLifecycleJob runs lifecycleJob and returns its task once SSH is up.
// task is one running lifecycle job.
type task struct {
	jobID       string
	allocID     string
	port        int
	containerID string
}

func (e *env) runLifecycleJob(t *testing.T, jobID string) *task {
	t.Helper()
	return e.runHoldJob(t, jobID, lifecycleScript, "0s", "2h")
}

// ssh runs command in the task's container over OpenSSH.
func (e *env) ssh(t *testing.T, tk *task, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := harness.SSHCommand(ctx, e.key, "root", "127.0.0.1", tk.port, command).CombinedOutput()
	require.NoError(t, err, "ssh %q: %s", command, out)
	return string(out)
}

// nomad runs the Nomad CLI against the agent.
func (e *env) nomad(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.NomadBinary(), args...)
	cmd.Env = append(os.Environ(), "NOMAD_ADDR=http://"+e.agent.Address)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pollNomad runs the CLI until check accepts its output.
func (e *env) pollNomad(t *testing.T, check func(string) bool, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		var err error
		out, err = e.nomad(args...)
		if err == nil && check(out) {
			return out
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("nomad %s never matched; last output:\n%s", strings.Join(args, " "), out)
	return ""
}

func TestLifecycle_LogsStatsSignalExec(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runLifecycleJob(t, "lifecycle")

	// logs: each stream in its own file
	stdout := e.pollNomad(t, func(s string) bool { return strings.Contains(s, "out-1") }, "alloc", "logs", tk.allocID, "work")
	require.NotContains(t, stdout, "err-1")
	stderr := e.pollNomad(t, func(s string) bool { return strings.Contains(s, "err-1") }, "alloc", "logs", "-stderr", tk.allocID, "work")
	require.NotContains(t, stderr, "out-1")

	// stats: the engine's memory use of a running task
	memory := regexp.MustCompile(`(\d+(\.\d+)?) (KiB|MiB)/64 MiB`)
	e.pollNomad(t, func(s string) bool {
		m := memory.FindStringSubmatch(s)
		return m != nil && m[1] != "0"
	}, "alloc", "status", "-stats", tk.allocID)

	// Nomad's task directories and environment, in an SSH session too
	require.Equal(t, "/alloc /local /secrets "+tk.allocID+"\n",
		e.ssh(t, tk, "cd /alloc && cd /local && cd /secrets && echo $NOMAD_ALLOC_DIR $NOMAD_TASK_DIR $NOMAD_SECRETS_DIR $NOMAD_ALLOC_ID"))

	// signals reach the job's process
	out, err := e.nomad("alloc", "signal", "-s", "SIGUSR1", tk.allocID, "work")
	require.NoError(t, err, out)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.ssh(t, tk, "cat /tmp/usr1 2>/dev/null || true"), "got-usr1") {
		require.True(t, time.Now().Before(deadline), "SIGUSR1 never reached the job")
		time.Sleep(200 * time.Millisecond)
	}

	// an interactive exec, with a terminal that script(1) provides
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nomadExec := fmt.Sprintf("%s alloc exec -t -task work %s /bin/sh -c 'tty; echo exec-ok'", harness.NomadBinary(), tk.allocID)
	cmd := exec.CommandContext(ctx, "script", "-qec", nomadExec, "/dev/null")
	cmd.Env = append(os.Environ(), "NOMAD_ADDR=http://"+e.agent.Address)
	execOut, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", execOut)
	require.Contains(t, string(execOut), "/dev/pts/")
	require.Contains(t, string(execOut), "exec-ok")

	// the job's exit code
	e.ssh(t, tk, "touch /tmp/finish")
	state, err := e.agent.WaitForTaskState(ctx, tk.allocID, "work", "dead")
	require.NoError(t, err)
	require.True(t, state.Failed)
	require.Equal(t, 3, terminatedExitCode(state.Events))
}

func TestLifecycle_AgentKilledAndRestarted(t *testing.T) {
	e := newEnv(t, "")
	first := e.runLifecycleJob(t, "first")
	second := e.runLifecycleJob(t, "second")
	e.ssh(t, second, "touch /tmp/say")
	e.pollNomad(t, func(s string) bool { return strings.Contains(s, "said 1") }, "alloc", "logs", second.allocID, "work")

	// kill the agent; the first job exits while it is down
	e.agent.Kill()
	e.ssh(t, first, "touch /tmp/finish")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitForContainerExit(t, ctx, e, first.containerID)

	killed := e.agent
	restarted, err := e.agent.Restart(ctx)
	require.NoError(t, err)
	e.agent = restarted

	// the exited task is reported with its real exit code, and its
	// container is not started again: Nomad removes it
	state, err := e.agent.WaitForTaskState(ctx, first.allocID, "work", "dead")
	require.NoError(t, err)
	require.Equal(t, 3, terminatedExitCode(state.Events))
	require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, first.allocID))

	// the running task kept its container and port, and SSH logs in
	ids, err := harness.Containers(ctx, e.docker, second.allocID)
	require.NoError(t, err)
	require.Equal(t, []string{second.containerID}, ids)
	_, event, err := e.agent.WaitForReady(ctx, second.jobID, "work")
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(second.port), event.Details["ssh_port"])
	require.Contains(t, e.ssh(t, second, "echo still-here"), "still-here")

	// logs go on, and no line repeats
	e.ssh(t, second, "touch /tmp/say")
	logs := e.pollNomad(t, func(s string) bool { return strings.Contains(s, "said 2") }, "alloc", "logs", second.allocID, "work")
	require.Equal(t, 1, strings.Count(logs, "out-1"), logs)
	require.Equal(t, 1, strings.Count(logs, "said 1"), logs)
	require.Equal(t, 1, strings.Count(logs, "said 2"), logs)

	// one plugin process serves the restarted agent: the one that the
	// killed agent left, reattached, or a new one
	leftover, err := killed.PluginPIDsInGroup()
	require.NoError(t, err)
	current, err := restarted.PluginPIDs()
	require.NoError(t, err)
	require.Len(t, append(leftover, current...), 1, "plugin processes of the killed agent %v, of the restarted agent %v", leftover, current)

	// stopping the jobs removes both containers
	require.NoError(t, e.agent.StopJob(first.jobID))
	require.NoError(t, e.agent.StopJob(second.jobID))
	require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, first.allocID))
	require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, second.allocID))
}

func waitForContainerExit(t *testing.T, ctx context.Context, e *env, containerID string) {
	t.Helper()
	for {
		info, err := e.docker.ContainerInspect(ctx, containerID)
		require.NoError(t, err)
		if !info.State.Running {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %s did not exit", containerID)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// terminatedExitCode returns the exit code of the task's Terminated event,
// or -1 when it has none.
func terminatedExitCode(events []*api.TaskEvent) int {
	for _, event := range events {
		if event.Type == api.TaskTerminated {
			return event.ExitCode
		}
	}
	return -1
}

func TestLifecycle_PluginKilled(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runLifecycleJob(t, "lifecycle")
	e.pollNomad(t, func(s string) bool { return strings.Contains(s, "out-1") }, "alloc", "logs", tk.allocID, "work")

	// kill the plugin process alone; Nomad starts it again
	pids, err := e.agent.PluginPIDs()
	require.NoError(t, err)
	require.Len(t, pids, 1)
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deadline := time.Now().Add(time.Minute)
	for {
		now, err := e.agent.PluginPIDs()
		require.NoError(t, err)
		if len(now) == 1 && now[0] != pids[0] {
			break
		}
		require.True(t, time.Now().Before(deadline), "Nomad did not start the plugin again")
		time.Sleep(250 * time.Millisecond)
	}

	// the task keeps its container, SSH, logs and signals
	ids, err := harness.Containers(ctx, e.docker, tk.allocID)
	require.NoError(t, err)
	require.Equal(t, []string{tk.containerID}, ids)
	require.Contains(t, e.ssh(t, tk, "echo still-here"), "still-here")

	e.ssh(t, tk, "touch /tmp/say")
	logs := e.pollNomad(t, func(s string) bool { return strings.Contains(s, "said 1") }, "alloc", "logs", tk.allocID, "work")
	require.Equal(t, 1, strings.Count(logs, "out-1"), logs)

	// the exit after the restart is reported
	e.ssh(t, tk, "touch /tmp/finish")
	state, err := e.agent.WaitForTaskState(ctx, tk.allocID, "work", "dead")
	require.NoError(t, err)
	require.Equal(t, 3, terminatedExitCode(state.Events))
}
