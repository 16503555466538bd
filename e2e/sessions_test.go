//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// holdJob is a batch job that runs a script with SSH on; its verbs are
// the job ID, the script, wait_for_connection and max_session.
const holdJob = `
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
      attempts = 0
      mode     = "fail"
    }

    task "work" {
      driver = "sshrerun"

      config {
        image   = "nomad-driver-sshrerun/busybox:local"
        command = "/bin/sh"
        args    = ["-c", %q]

        ssh {
          port                = "ssh"
          authorized_keys     = [var.authorized_key]
          wait_for_connection = %q
          max_session         = %q
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

// runHoldJob runs holdJob and returns its task once SSH is up.
func (e *env) runHoldJob(t *testing.T, jobID, script, wait, maxSession string) *task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := e.agent.RunJobHCL(fmt.Sprintf(holdJob, jobID, script, wait, maxSession), fmt.Sprintf("authorized_key = %q\n", e.key.AuthorizedKey))
	require.NoError(t, err)
	allocID, event, err := e.agent.WaitForReady(ctx, jobID, "work")
	if allocID != "" {
		t.Cleanup(func() {
			cleanupCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = harness.RemoveContainers(cleanupCtx, e.docker, allocID)
		})
	}
	require.NoError(t, err)

	port, err := strconv.Atoi(event.Details["ssh_port"])
	require.NoError(t, err)
	ids, err := harness.Containers(ctx, e.docker, allocID)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	return &task{jobID: jobID, allocID: allocID, port: port, containerID: ids[0]}
}

// waitForEvent polls the task's events until one contains text.
func (e *env) waitForEvent(t *testing.T, allocID, text string) *api.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	event, err := e.agent.WaitForEvent(ctx, allocID, "work", text)
	require.NoError(t, err)
	return event
}

func TestHold_EndsWithoutConnection(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runHoldJob(t, "hold-idle", "exit 5", "3s", "1m")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state, err := e.agent.WaitForTaskState(ctx, tk.allocID, "work", "dead")
	require.NoError(t, err)
	require.Equal(t, 5, terminatedExitCode(state.Events))

	exited := e.waitForEvent(t, tk.allocID, "exited with code 5")
	require.NotEmpty(t, exited.Details["hold_until"])
	e.waitForEvent(t, tk.allocID, "SSH closed: no SSH connection within 3s")
}

func TestHold_SessionKeepsContainerUp(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runHoldJob(t, "hold-session", "exit 5", "2m", "1m")
	e.waitForEvent(t, tk.allocID, "exited with code 5")

	// the job has exited, and SSH still logs in
	require.Contains(t, e.ssh(t, tk, "echo in-hold"), "in-hold")

	// the session's audit events name the user, the key and the address
	opened := e.waitForEvent(t, tk.allocID, "SSH session opened by root")
	require.Equal(t, e.keyFingerprint(t), opened.Details["key_fingerprint"])
	require.True(t, strings.HasPrefix(opened.Details["remote_addr"], "172.") || strings.HasPrefix(opened.Details["remote_addr"], "127."), "remote_addr %q", opened.Details["remote_addr"])
	closed := e.waitForEvent(t, tk.allocID, "SSH session of root")
	require.NotEmpty(t, closed.Details["duration"])

	// the last session closed, so the task ends with the job's code
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state, err := e.agent.WaitForTaskState(ctx, tk.allocID, "work", "dead")
	require.NoError(t, err)
	require.Equal(t, 5, terminatedExitCode(state.Events))
	e.waitForEvent(t, tk.allocID, "SSH closed: the last SSH session closed")

	// no key material in the agent's log
	for _, secret := range []string{"PRIVATE KEY", strings.Fields(e.key.AuthorizedKey)[1]} {
		found, err := e.agent.LogContains(secret)
		require.NoError(t, err)
		require.False(t, found, "the agent log contains %q", secret)
	}
}

func TestHold_StopEndsHold(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runHoldJob(t, "hold-stop", "exit 6", "10m", "2h")
	e.waitForEvent(t, tk.allocID, "exited with code 6")

	out, err := e.nomad("job", "stop", "-detach", tk.jobID)
	require.NoError(t, err, out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state, err := e.agent.WaitForTaskState(ctx, tk.allocID, "work", "dead")
	require.NoError(t, err)
	require.Equal(t, 6, terminatedExitCode(state.Events))
}

// keyFingerprint returns the SHA256 fingerprint of the test user's key.
func (e *env) keyFingerprint(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-f", e.key.PrivatePath).Output()
	require.NoError(t, err)
	return strings.Fields(string(out))[1]
}

func TestHostKey_StrictCheckingAcrossRestart(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runLifecycleJob(t, "hostkey")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, event, err := e.agent.WaitForReady(ctx, tk.jobID, "work")
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(event.Message, "# host key "+event.Details["host_key_fingerprint"]), event.Message)

	// only the reported key is in known_hosts, and ssh checks it strictly
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", tk.port, event.Details["host_key"])
	require.NoError(t, os.WriteFile(knownHosts, []byte(line), 0o600))
	strict := func() string {
		cmd := exec.CommandContext(ctx, "ssh", "-p", strconv.Itoa(tk.port), "-i", e.key.PrivatePath,
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
			"-o", "UserKnownHostsFile="+knownHosts, "root@127.0.0.1", "echo strict-ok")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	require.Contains(t, strict(), "strict-ok")

	// the key survives an agent restart
	e.agent.Kill()
	restarted, err := e.agent.Restart(ctx)
	require.NoError(t, err)
	e.agent = restarted
	require.Contains(t, strict(), "strict-ok")
}

func TestSessions_FileCopyAndForwarding(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runLifecycleJob(t, "files")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	common := []string{"-i", e.key.PrivatePath, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + filepath.Join(dir, "known_hosts")}

	// scp up and down
	local := filepath.Join(dir, "up.txt")
	require.NoError(t, os.WriteFile(local, []byte("copied with scp\n"), 0o644))
	scp := func(args ...string) {
		all := append(append([]string{"-P", strconv.Itoa(tk.port)}, common...), args...)
		out, err := exec.CommandContext(ctx, "scp", all...).CombinedOutput()
		require.NoError(t, err, "scp: %s", out)
	}
	scp(local, "root@127.0.0.1:/tmp/up.txt")
	require.Equal(t, "copied with scp\n", e.ssh(t, tk, "cat /tmp/up.txt"))
	scp("root@127.0.0.1:/tmp/up.txt", filepath.Join(dir, "down.txt"))
	down, err := os.ReadFile(filepath.Join(dir, "down.txt"))
	require.NoError(t, err)
	require.Equal(t, "copied with scp\n", string(down))

	// sftp in batch mode
	batch := filepath.Join(dir, "batch")
	require.NoError(t, os.WriteFile(batch, []byte("put "+local+" /tmp/sftp.txt\nls /tmp\n"), 0o644))
	sftpArgs := append(append([]string{"-P", strconv.Itoa(tk.port), "-b", batch}, common...), "root@127.0.0.1")
	out, err := exec.CommandContext(ctx, "sftp", sftpArgs...).CombinedOutput()
	require.NoError(t, err, "sftp: %s", out)
	require.Contains(t, string(out), "sftp.txt")
	require.Equal(t, "copied with scp\n", e.ssh(t, tk, "cat /tmp/sftp.txt"))

	// ssh -L reaches a web server inside the container
	e.ssh(t, tk, "mkdir -p /tmp/www && echo served-inside > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www")
	localPort, err := harness.FreePort()
	require.NoError(t, err)
	forwardArgs := append(append([]string{"-p", strconv.Itoa(tk.port), "-N", "-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:8080", localPort)}, common...), "root@127.0.0.1")
	forward := exec.CommandContext(ctx, "ssh", forwardArgs...)
	require.NoError(t, forward.Start())
	t.Cleanup(func() {
		_ = forward.Process.Kill()
		_ = forward.Wait()
	})

	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", localPort))
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(data)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, "served-inside\n", body)

	// agent forwarding is off: the session has no agent socket
	agentArgs := append(append([]string{"-p", strconv.Itoa(tk.port), "-A"}, common...), "root@127.0.0.1", "echo agent=$SSH_AUTH_SOCK")
	out, err = exec.CommandContext(ctx, "ssh", agentArgs...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "agent=\n")
}

func TestLogin_PasswordRejected(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runLifecycleJob(t, "password")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// without a key, only password and keyboard-interactive are left, and
	// the server offers neither
	cmd := exec.CommandContext(ctx, "ssh", "-p", strconv.Itoa(tk.port), "-o", "BatchMode=yes",
		"-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "root@127.0.0.1", "true")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "Permission denied (publickey)")
}

func TestSSHCommand_PrintsAndRuns(t *testing.T) {
	e := newEnv(t, "")
	tk := e.runLifecycleJob(t, "sshcmd")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, harness.PluginBinary(), append([]string{"ssh-command"}, args...)...)
		cmd.Env = append(os.Environ(), "NOMAD_ADDR=http://"+e.agent.Address)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(tk.allocID[:8])
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", tk.port))
	require.Contains(t, out, fmt.Sprintf("ssh -p %d root@127.0.0.1\n", tk.port))

	out, err = run("-exec", "-i", e.key.PrivatePath, tk.allocID, "work", "--", "echo", "exec-ran")
	require.NoError(t, err, out)
	require.Contains(t, out, "exec-ran")

	out, err = run("00000000-0000-0000-0000-000000000000")
	require.Error(t, err)
	require.Contains(t, out, `no allocation with ID "00000000-0000-0000-0000-000000000000"`)

	out, err = run(tk.allocID, "other")
	require.Error(t, err)
	require.Contains(t, out, `has no task "other" (tasks: work)`)

	// a task that is not running yet: its image pull hangs on a listener
	// that accepts connections and never responds
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	pendingJob := strings.Replace(lifecycleJob("pending"), "nomad-driver-sshrerun/busybox:local", silent.Addr().String()+"/sshrerun/never:1", 1)
	_, err = e.agent.RunJobHCL(pendingJob, fmt.Sprintf("authorized_key = %q\n", e.key.AuthorizedKey))
	require.NoError(t, err)
	var pendingAlloc string
	deadline := time.Now().Add(time.Minute)
	for pendingAlloc == "" {
		stubs, _, err := e.agent.Client.Jobs().Allocations("pending", false, nil)
		require.NoError(t, err)
		if len(stubs) > 0 && stubs[0].TaskStates["work"] != nil {
			pendingAlloc = stubs[0].ID
		}
		require.True(t, time.Now().Before(deadline), "the pending job got no allocation")
		time.Sleep(250 * time.Millisecond)
	}
	out, err = run(pendingAlloc, "work")
	require.Error(t, err)
	require.Contains(t, out, `task "work" of allocation `+pendingAlloc+" is still pending; try again once it runs")
	_, err = e.nomad("job", "stop", "-purge", "-detach", "pending")
	require.NoError(t, err)

	// a task without an ssh block
	allocID, _ := e.runBatch(t, "no-ssh", `
        image   = "nomad-driver-sshrerun/busybox:local"
        command = "/bin/true"`, 32)
	out, err = run(allocID)
	require.Error(t, err)
	require.Contains(t, out, "reports an ssh command yet")
}
