package driver

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/allocdir"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
)

// soakCycles is how many tasks the soak test starts and stops one after
// another.
const soakCycles = 300

// buildAllocDir builds the task's alloc directory like the harness's
// MkAllocDir, whose cleanup also closes the harness, and returns a
// function that destroys it.
func buildAllocDir(t testing.TB, task *drivers.TaskConfig) func() {
	t.Helper()
	root := t.TempDir()
	allocDir := allocdir.NewAllocDir(hclog.NewNullLogger(), root, task.AllocID)
	require.NoError(t, allocDir.Build())
	require.NoError(t, allocDir.NewTaskDir(task.Name).Build(false, nil))
	task.AllocDir = allocDir.AllocDir
	return func() {
		require.NoError(t, allocDir.Destroy())
	}
}

// openFDs returns the number of open file descriptors of this process.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

func TestSoak_StartStopLeaksNothing(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)

	cycle := func() {
		task := newTask(t, freeSSHPort(t), &TaskConfig{
			Image:   testImage,
			Command: "/bin/sh",
			Args:    []string{"-c", "while :; do sleep 0.1; done"},
			SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
		})
		cleanup := buildAllocDir(t, task)
		defer cleanup()

		_, _, err := d.StartTask(task)
		require.NoError(t, err)
		require.NoError(t, d.StopTask(task.ID, time.Second, "SIGKILL"))
		d.waitExit(t, task.ID, 30*time.Second)
		require.NoError(t, d.DestroyTask(task.ID, false))

		ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+task.AllocID)
		require.NoError(t, err)
		require.Empty(t, ids, "cycle left a container")
	}

	// warm up, so that lazily started goroutines and pooled connections
	// are part of the baseline
	for i := 0; i < 5; i++ {
		cycle()
	}
	runtime.GC()
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	for i := 0; i < soakCycles; i++ {
		cycle()
	}

	// handles wind down in the background, so poll back to the baseline;
	// a few goroutines of idle connections may come and go
	const slack = 5
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		nowGoroutines, nowFDs := runtime.NumGoroutine(), openFDs(t)
		if nowGoroutines <= goroutines+slack && nowFDs <= fds+slack {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("after %d cycles: %d goroutines (baseline %d), %d open fds (baseline %d)\n%s",
				soakCycles, nowGoroutines, goroutines, nowFDs, fds, buf[:n])
		}
		time.Sleep(200 * time.Millisecond)
	}
}
