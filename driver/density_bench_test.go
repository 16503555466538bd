package driver

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
)

// densityTasks is how many SSH tasks the density benchmark starts at once.
const densityTasks = 100

// rssKiB returns the resident set size of process pid in KiB, from
// /proc/<pid>/status.
func rssKiB(pid int) (int64, error) {
	return statusKiB(pid, "VmRSS:")
}

// statusKiB returns a memory field of /proc/<pid>/status in KiB.
func statusKiB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				return strconv.ParseInt(fields[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// BenchmarkDensity starts densityTasks SSH tasks together through the
// driver, which runs in this process as it runs in the plugin. It reports
// the time until all of them serve the SSH banner, this process's RSS
// growth per task, and the median idle RSS of the in-container SSH server,
// read on the host from /proc of each container's init. The init's
// RSS counts the pages of the plugin binary that it touched, which every
// container shares from the page cache, so its private part (RssAnon) is
// reported too.
func BenchmarkDensity(b *testing.B) {
	d := newBenchDriver(b)
	_, docker, _, err := d.state()
	require.NoError(b, err)
	key := newUserKey(b)
	ctx := context.Background()

	for i := 0; i < b.N; i++ {
		runtime.GC()
		before, err := rssKiB(os.Getpid())
		require.NoError(b, err)

		// start every task at once
		tasks := make([]*drivers.TaskConfig, densityTasks)
		ports := make([]int, densityTasks)
		cleanups := make([]func(), densityTasks)
		for n := range tasks {
			ports[n] = freeSSHPort(b)
			tasks[n] = newTask(b, ports[n], &TaskConfig{
				Image:   testImage,
				Command: "/bin/sh",
				Args:    []string{"-c", "while :; do sleep 1; done"},
				SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
			})
			cleanups[n] = buildAllocDir(b, tasks[n])
		}
		var wg sync.WaitGroup
		errs := make([]error, densityTasks)
		started := time.Now()
		for n := range tasks {
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				if _, _, err := d.StartTask(tasks[n]); err != nil {
					errs[n] = err
					return
				}
				errs[n] = waitForBanner(ports[n], time.Now().Add(5*time.Minute))
			}(n)
		}
		wg.Wait()
		allReady := time.Since(started)
		for _, err := range errs {
			require.NoError(b, err)
		}

		// the plugin's growth, and each init's idle memory
		runtime.GC()
		after, err := rssKiB(os.Getpid())
		require.NoError(b, err)
		// KiB, kept in Duration slices to reuse median
		var initRSS, initAnon []time.Duration
		for _, task := range tasks {
			h, ok := d.tasks.Get(task.ID)
			require.True(b, ok)
			info, err := docker.ContainerInspect(ctx, h.containerID)
			require.NoError(b, err)
			rss, err := rssKiB(info.State.Pid)
			require.NoError(b, err)
			anon, err := statusKiB(info.State.Pid, "RssAnon:")
			require.NoError(b, err)
			initRSS = append(initRSS, time.Duration(rss))
			initAnon = append(initAnon, time.Duration(anon))
		}

		for n, task := range tasks {
			require.NoError(b, d.DestroyTask(task.ID, true))
			cleanups[n]()
		}

		b.ReportMetric(allReady.Seconds(), "all-ready-s")
		b.ReportMetric(float64(after-before)/1024/densityTasks, "plugin-MiB/task")
		b.ReportMetric(float64(median(initRSS))/1024, "init-idle-MiB")
		b.ReportMetric(float64(median(initAnon))/1024, "init-private-MiB")
	}
}
