package driver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shirou/gopsutil/v3/cpu"
)

// Measured lists which fields the engine's stats fill, as Nomad's docker
// driver reports them. With cgroup v2 the engine has no RSS or max usage.
var (
	measuredCPUStats      = []string{"Throttled Periods", "Throttled Time", "Percent"}
	measuredMemoryStatsV1 = []string{"RSS", "Cache", "Swap", "Usage", "Max Usage"}
	measuredMemoryStatsV2 = []string{"Cache", "Swap", "Usage"}
	totalTicksOnce        sync.Once
	totalTicksAvailable   float64
)

// TaskStats streams the container's CPU and memory usage from the
// engine, at most once per interval, until ctx ends or the task exits.
func (d *Driver) TaskStats(ctx context.Context, taskID string, interval time.Duration) (<-chan *drivers.TaskResourceUsage, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}

	ch := make(chan *drivers.TaskResourceUsage)
	go h.collectStats(ctx, ch, interval)
	return ch, nil
}

func (h *taskHandle) collectStats(ctx context.Context, ch chan<- *drivers.TaskResourceUsage, interval time.Duration) {
	defer close(ch)
	for {
		err := h.streamStats(ctx, ch, interval)
		if ctx.Err() != nil || !h.isRunning() {
			return
		}

		// the engine may be restarting: try again after an interval
		h.logger.Debug("the stats stream ended, retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-h.doneCh:
			return
		case <-time.After(interval):
		}
	}
}

func (h *taskHandle) streamStats(ctx context.Context, ch chan<- *drivers.TaskResourceUsage, interval time.Duration) error {
	resp, err := h.docker.ContainerStats(ctx, h.containerID, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	decoder := json.NewDecoder(resp.Body)
	var lastSent time.Time
	for {
		var stats container.StatsResponse
		if err := decoder.Decode(&stats); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if time.Since(lastSent) < interval {
			continue
		}

		select {
		case ch <- statsToUsage(&stats):
			lastSent = time.Now()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// statsToUsage converts one stats sample of the engine into Nomad's usage.
func statsToUsage(s *container.StatsResponse) *drivers.TaskResourceUsage {
	measuredMemory := measuredMemoryStatsV1
	rss, hasRSS := s.MemoryStats.Stats["rss"]
	if !hasRSS {
		measuredMemory = measuredMemoryStatsV2
		// cgroup v2 calls anonymous memory "anon"
		rss = s.MemoryStats.Stats["anon"]
	}
	cache, ok := s.MemoryStats.Stats["cache"]
	if !ok {
		cache = s.MemoryStats.Stats["file"]
	}

	memory := &drivers.MemoryStats{
		RSS:        rss,
		Cache:      cache,
		Swap:       s.MemoryStats.Stats["swap"],
		MappedFile: s.MemoryStats.Stats["mapped_file"],
		Usage:      s.MemoryStats.Usage,
		MaxUsage:   s.MemoryStats.MaxUsage,
		Measured:   measuredMemory,
	}

	cpus := int(s.CPUStats.OnlineCPUs)
	if cpus == 0 {
		cpus = runtime.NumCPU()
	}
	cur, pre := s.CPUStats, s.PreCPUStats
	cpuStats := &drivers.CpuStats{
		ThrottledPeriods: cur.ThrottlingData.ThrottledPeriods,
		ThrottledTime:    cur.ThrottlingData.ThrottledTime,
		Percent:          percent(cur.CPUUsage.TotalUsage, pre.CPUUsage.TotalUsage, cur.SystemUsage, pre.SystemUsage, cpus),
		SystemMode:       percent(cur.CPUUsage.UsageInKernelmode, pre.CPUUsage.UsageInKernelmode, cur.CPUUsage.TotalUsage, pre.CPUUsage.TotalUsage, cpus),
		UserMode:         percent(cur.CPUUsage.UsageInUsermode, pre.CPUUsage.UsageInUsermode, cur.CPUUsage.TotalUsage, pre.CPUUsage.TotalUsage, cpus),
		Measured:         measuredCPUStats,
	}
	cpuStats.TotalTicks = cpuStats.Percent / 100 * cpuTotalTicks() / float64(cpus)

	return &drivers.TaskResourceUsage{
		ResourceUsage: &drivers.ResourceUsage{MemoryStats: memory, CpuStats: cpuStats},
		Timestamp:     s.Read.UTC().UnixNano(),
	}
}

// percent returns the share of value's growth in total's growth, scaled to
// cpus cores, as `docker stats` computes it.
func percent(value, previousValue, total, previousTotal uint64, cpus int) float64 {
	if value < previousValue || total <= previousTotal {
		return 0
	}
	return float64(value-previousValue) / float64(total-previousTotal) * float64(cpus) * 100
}

// cpuTotalTicks returns the host's compute capacity in MHz, summed over
// its cores, which Nomad measures CPU use in. It is read once.
func cpuTotalTicks() float64 {
	totalTicksOnce.Do(func() {
		infos, err := cpu.Info()
		if err != nil {
			return
		}
		for _, info := range infos {
			totalTicksAvailable += info.Mhz * float64(info.Cores)
		}
	})
	return totalTicksAvailable
}
