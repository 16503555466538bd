package driver

import (
	"testing"
	"time"

	dtestutil "github.com/hashicorp/nomad/plugins/drivers/testutils"
	"github.com/stretchr/testify/require"
)

func TestExecTask_OutputAndExitCode(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		Env:     map[string]string{"GREETING": "hello"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, task)

	result, err := d.ExecTask(task.ID, []string{"/bin/sh", "-c", "echo $GREETING; echo oops >&2; exit 5"}, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, 5, result.ExitResult.ExitCode)
	require.Equal(t, "hello\n", string(result.Stdout))
	require.Equal(t, "oops\n", string(result.Stderr))
}

func TestExecTaskStreaming_Conformance(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
	})
	d.startTask(t, task)

	dtestutil.ExecTaskStreamingConformanceTests(t, d.DriverHarness, task.ID)
}
