package main

import (
	"fmt"
	"sort"
	"time"
)

// Start latency targets: sshrerun starts at most 10% slower than
// a container started through the Docker API, and faster than Nomad's
// docker driver.
const (
	maxRatioToRaw    = 1.10
	maxRatioToDocker = 1.0
)

func printReport(samples map[string][]time.Duration) {
	fmt.Printf("\nstart to SSH banner, %d runs each:\n\n", len(samples[kindRaw]))
	fmt.Printf("| %-14s | %10s | %10s | %10s |\n", "start", "median ms", "min ms", "max ms")
	fmt.Printf("| %-14s | %10s | %10s | %10s |\n", "---", "---:", "---:", "---:")
	medians := map[string]time.Duration{}
	for _, name := range []string{kindRaw, kindDocker, kindSSHRerun} {
		sorted := append([]time.Duration(nil), samples[name]...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		medians[name] = median(sorted)
		fmt.Printf("| %-14s | %10.1f | %10.1f | %10.1f |\n", name,
			milliseconds(medians[name]), milliseconds(sorted[0]), milliseconds(sorted[len(sorted)-1]))
	}

	// the raw Docker run starts at ContainerCreate, the sshrerun run at the
	// job's Register, so the first ratio includes Nomad's scheduling and
	// the client's task setup
	toRaw := float64(medians[kindSSHRerun]) / float64(medians[kindRaw])
	toDocker := float64(medians[kindSSHRerun]) / float64(medians[kindDocker])
	fmt.Println()
	fmt.Printf("sshrerun / raw docker (agent level, from Register) = %.2f, target <= %.2f: %s\n",
		toRaw, maxRatioToRaw, verdict(toRaw <= maxRatioToRaw))
	fmt.Printf("sshrerun / nomad docker (both from Register)       = %.2f, target < %.2f: %s\n",
		toDocker, maxRatioToDocker, verdict(toDocker < maxRatioToDocker))
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func milliseconds(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}
