//go:build linux

package sshserver

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReaperDeliversEveryFastExitStatus(t *testing.T) {
	reaper := sharedReaper(hclog.NewNullLogger())
	const workers, perWorker = 8, 25

	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	children := make(chan *child, workers*perWorker)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				c, err := reaper.start(exec.Command("true"))
				if err != nil {
					errs <- err
					continue
				}
				children <- c
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(children)

	for err := range errs {
		require.NoError(t, err)
	}
	deadline := time.After(testTimeout)
	count := 0
	for c := range children {
		select {
		case <-c.done:
			assert.True(t, c.status.Exited(), "pid %d", c.pid)
			assert.Equal(t, 0, c.status.ExitStatus(), "pid %d", c.pid)
			count++
		case <-deadline:
			t.Fatalf("exit status of pid %d did not arrive within %s", c.pid, testTimeout)
		}
	}
	assert.Equal(t, workers*perWorker, count)
}

func TestReaperReportsExitCodes(t *testing.T) {
	reaper := sharedReaper(hclog.NewNullLogger())

	c, err := reaper.start(exec.Command("sh", "-c", "exit 42"))
	require.NoError(t, err)

	select {
	case <-c.done:
		assert.Equal(t, 42, exitCode(c.status))
	case <-time.After(testTimeout):
		t.Fatal("exit status did not arrive")
	}
	assert.ErrorIs(t, reaper.signal(c, 0), errProcessDone)
}

func TestReaperCollectsOrphans(t *testing.T) {
	reaper := sharedReaper(hclog.NewNullLogger())
	pidFile := tempPath(t, "orphan.pid")
	output, err := os.Create(pidFile)
	require.NoError(t, err)
	defer output.Close()
	// The shell exits at once, so its background sleep becomes an orphan
	// that the kernel hands to this process, the subreaper.
	cmd := exec.Command("sh", "-c", "sleep 0.2 & echo $!")
	cmd.Stdout = output

	c, err := reaper.start(cmd)
	require.NoError(t, err)
	<-c.done
	content, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	orphanPID, err := strconv.Atoi(strings.TrimSpace(string(content)))
	require.NoError(t, err)

	waitFor(t, "the orphan to be reaped", func() bool { return processGone(orphanPID) })
}
