package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
)

// startTaskWithLogs is startTask with Nomad's log collector running, so
// that the task's output lands in the alloc's log files.
func (d *testDriver) startTaskWithLogs(t *testing.T, task *drivers.TaskConfig) *drivers.TaskHandle {
	t.Helper()
	d.mkAllocDir(t, task, true)

	handle, _, err := d.StartTask(task)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = d.DestroyTask(task.ID, true)
		d.removeAllocContainers(t, task.AllocID)
	})
	return handle
}

// waitForLog polls the task's log file for stream ("stdout" or "stderr")
// until check accepts its content.
func waitForLog(t *testing.T, task *drivers.TaskConfig, stream string, check func(string) bool) string {
	t.Helper()
	path := filepath.Join(task.AllocDir, "alloc", "logs", fmt.Sprintf("%s.%s.0", task.Name, stream))
	deadline := time.Now().Add(30 * time.Second)
	var content string
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(path)
		content = string(data)
		if check(content) {
			return content
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s of task %s never matched; content: %q", stream, task.Name, content)
	return ""
}

func TestLogs_ShortTaskKeepsOutput(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "echo out-line; echo err-line >&2"},
	})
	d.startTaskWithLogs(t, task)

	result := d.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 0, result.ExitCode)

	// the exit is reported after the output reached the fifos; the log
	// collector writes the files a moment later
	stdout := waitForLog(t, task, "stdout", func(s string) bool { return s != "" })
	require.Equal(t, "out-line\n", stdout)
	stderr := waitForLog(t, task, "stderr", func(s string) bool { return s != "" })
	require.Equal(t, "err-line\n", stderr)
}

func TestLogs_SSHTaskKeepsStreamsApart(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "echo to-stdout; echo to-stderr >&2; exit 3"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTaskWithLogs(t, task)

	result := d.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 3, result.ExitCode)

	stdout := waitForLog(t, task, "stdout", func(s string) bool { return strings.Contains(s, "to-stdout") })
	require.NotContains(t, stdout, "to-stderr")
	stderr := waitForLog(t, task, "stderr", func(s string) bool { return strings.Contains(s, "to-stderr") })
	require.NotContains(t, stderr, "to-stdout")
}

func TestLogs_RecoveryRepeatsNoLine(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "i=1; while [ $i -le 40 ]; do echo line $i; i=$((i+1)); sleep 0.05; done"},
	})
	handle := d.startTaskWithLogs(t, task)
	waitForLog(t, task, "stdout", func(s string) bool { return strings.Contains(s, "line 5\n") })

	// the plugin stops mid-stream and a new one takes the task over
	d.impl.Shutdown()
	recovered := newTestDriver(t, nil)
	require.NoError(t, recovered.RecoverTask(handle))
	result := recovered.waitExit(t, task.ID, time.Minute)
	require.Equal(t, 0, result.ExitCode)

	stdout := waitForLog(t, task, "stdout", func(s string) bool { return strings.Contains(s, "line 40\n") })
	var want strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	require.Equal(t, want.String(), stdout)
	require.NoError(t, recovered.DestroyTask(task.ID, false))
}
