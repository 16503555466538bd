package driver

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/require"
)

func TestTaskStats_ReportsMemoryAndCPU(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		// keeps one core busy, so CPU use shows
		Args: []string{"-c", "while :; do :; done"},
		SSH:  &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, task)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := d.TaskStats(ctx, task.ID, 500*time.Millisecond)
	require.NoError(t, err)

	// the first sample has no previous one to compute CPU use from, so
	// read until one reports it
	for {
		select {
		case usage, ok := <-ch:
			require.True(t, ok, "the stats channel closed")
			require.NotNil(t, usage.ResourceUsage)
			require.Greater(t, usage.ResourceUsage.MemoryStats.Usage, uint64(0))
			require.NotZero(t, usage.Timestamp)
			if usage.ResourceUsage.CpuStats.Percent > 0 {
				return
			}
		case <-ctx.Done():
			t.Fatal("no stats sample reported CPU use")
		}
	}
}

func TestStatsToUsage_CgroupV1(t *testing.T) {
	s := &container.StatsResponse{}
	s.MemoryStats.Usage = 64 << 20
	s.MemoryStats.MaxUsage = 80 << 20
	s.MemoryStats.Stats = map[string]uint64{"rss": 32 << 20, "cache": 16 << 20, "swap": 0}
	s.CPUStats.OnlineCPUs = 2
	s.CPUStats.CPUUsage.TotalUsage = 2_000_000_000
	s.CPUStats.SystemUsage = 10_000_000_000
	s.PreCPUStats.CPUUsage.TotalUsage = 1_000_000_000
	s.PreCPUStats.SystemUsage = 8_000_000_000

	usage := statsToUsage(s)
	require.Equal(t, uint64(32<<20), usage.ResourceUsage.MemoryStats.RSS)
	require.Equal(t, uint64(16<<20), usage.ResourceUsage.MemoryStats.Cache)
	require.Equal(t, uint64(80<<20), usage.ResourceUsage.MemoryStats.MaxUsage)
	require.Equal(t, measuredMemoryStatsV1, usage.ResourceUsage.MemoryStats.Measured)
	// 1s of CPU over 2s of system time on 2 cores is 100% of one core
	require.InDelta(t, 100.0, usage.ResourceUsage.CpuStats.Percent, 0.001)
}

func TestStatsToUsage_CgroupV2(t *testing.T) {
	s := &container.StatsResponse{}
	s.MemoryStats.Usage = 64 << 20
	s.MemoryStats.Stats = map[string]uint64{"anon": 30 << 20, "file": 10 << 20}

	usage := statsToUsage(s)
	require.Equal(t, uint64(30<<20), usage.ResourceUsage.MemoryStats.RSS)
	require.Equal(t, uint64(10<<20), usage.ResourceUsage.MemoryStats.Cache)
	require.Equal(t, measuredMemoryStatsV2, usage.ResourceUsage.MemoryStats.Measured)
	require.Zero(t, usage.ResourceUsage.CpuStats.Percent)
}
