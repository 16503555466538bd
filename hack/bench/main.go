// Command bench measures how long a job container takes from start to a
// reachable SSH server: the time until the host port on 127.0.0.1 sends the
// `SSH-2.0-` banner. It compares three ways to start the same busybox image
// with the same SSH server, the container init that the plugin embeds:
//
//   - raw Docker: ContainerCreate and ContainerStart through the Docker
//     Engine API, timed from the create request, connected to once the
//     start has returned;
//   - Nomad's docker driver: a job that mounts the init and runs it itself,
//     timed from the job's Register request;
//   - the sshrerun driver: a job with an ssh block, timed from Register.
//
// Two more raw Docker kinds connect from the create request on, as the
// Nomad runs do from Register, one with the init's gateway echo off and
// one with it on. They show the wait that a connection made during the
// container's start meets, and that the echo removes, without Nomad.
//
// Both Nomad jobs run on one Nomad v1.6.3 agent (server and client) on
// 127.0.0.1 that this program starts and stops. The runs are interleaved:
// each round starts raw Docker, then the two Nomad drivers and then the
// two early raw kinds, each pair in an order that alternates from round to
// round. Every container is gone before the next run starts. The report
// adds a round-by-round comparison of the drivers.
//
// Run it with `make bench-start`, which first builds the plugin, the tools
// (among them the Nomad agent) and the busybox image.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

func main() {
	runs := flag.Int("runs", 10, "number of interleaved rounds; each round starts one container of each kind (1 to 100)")
	runTimeout := flag.Duration("run-timeout", 2*time.Minute, "time limit of one start, such as 90s")
	keepDir := flag.Bool("keep", false, "keep the working directory with the agent's log after the run")
	flag.Parse()

	if *runs < 1 || *runs > 100 {
		fmt.Fprintf(os.Stderr, "bench: -runs %d is out of range; use 1 to 100\n", *runs)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// the whole benchmark stops by itself: each run has its own limit,
	// and the total gets the setup and teardown on top
	ctx, cancel := context.WithTimeout(ctx, time.Duration(*runs)*3*(*runTimeout)+5*time.Minute)
	defer cancel()

	err := run(ctx, *runs, *runTimeout, *keepDir)
	// the agent's log collectors outlive it, by design of Nomad's client
	harness.StopLeftovers()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench failed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, runs int, runTimeout time.Duration, keepDir bool) (err error) {
	for _, path := range []string{harness.PluginBinary(), harness.InitBinary(), harness.NomadBinary()} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s is missing; run make build tools images first: %w", path, err)
		}
	}

	dir, err := os.MkdirTemp("", "sshrerun-bench-")
	if err != nil {
		return err
	}
	fmt.Printf("==> working directory %s\n", dir)

	keys, err := newKeys()
	if err != nil {
		return err
	}
	// the raw Docker containers and the docker driver job read the first
	// file, which leaves the gateway echo off, like an SSH server in an
	// image. The second turns it on, as the driver does.
	configPath := filepath.Join(dir, "init-config.json")
	if err := writeInitConfig(configPath, keys, false); err != nil {
		return err
	}
	echoConfigPath := filepath.Join(dir, "init-config-echo.json")
	if err := writeInitConfig(echoConfigPath, keys, true); err != nil {
		return err
	}

	docker, err := harness.NewDockerClient()
	if err != nil {
		return fmt.Errorf("failed to create the Docker client: %w", err)
	}
	defer docker.Close()
	tracker := &containerTracker{docker: docker}
	// remove whatever is left by container ID, even after a failure
	defer tracker.removeAll()

	agent, err := startAgent(ctx, dir)
	if err != nil {
		return err
	}
	defer func() {
		agent.stop()
		if keepDir {
			fmt.Printf("==> kept %s\n", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
		}
	}()
	fmt.Printf("==> nomad agent (pid %d) at http://%s, log %s\n", agent.PID(), agent.Address, agent.LogPath)

	kinds := []kind{
		{name: kindRaw, start: func(ctx context.Context, round int) (time.Duration, error) {
			return startRaw(ctx, docker, tracker, configPath, round, false)
		}},
		{name: kindDocker, start: func(ctx context.Context, round int) (time.Duration, error) {
			return agent.startJob(ctx, tracker, dockerJob(round, configPath))
		}},
		{name: kindSSHRerun, start: func(ctx context.Context, round int) (time.Duration, error) {
			return agent.startJob(ctx, tracker, sshrerunJob(round, keys.authorizedKey))
		}},
		// the same raw container, connected to from the create request on,
		// without and with the gateway echo: they show what the docker
		// job's client meets, and what the echo changes, without Nomad
		{name: kindRawEarly, start: func(ctx context.Context, round int) (time.Duration, error) {
			return startRaw(ctx, docker, tracker, configPath, round, true)
		}},
		{name: kindRawEarlyEcho, start: func(ctx context.Context, round int) (time.Duration, error) {
			return startRaw(ctx, docker, tracker, echoConfigPath, round, true)
		}},
	}

	// one warm-up round, not counted, so that the first measured run of
	// each kind does not pay for cold page caches and the first scheduling
	fmt.Printf("==> warm-up round\n")
	for _, k := range kinds {
		if _, err := runOnce(ctx, k, 0, runTimeout); err != nil {
			return fmt.Errorf("warm-up %s: %w", k.name, err)
		}
	}

	samples := map[string][]time.Duration{}
	for round := 1; round <= runs; round++ {
		// the two Nomad drivers swap places every round, so that neither
		// always runs right after the raw container
		order := kinds
		if round%2 == 0 {
			order = []kind{kinds[0], kinds[2], kinds[1], kinds[4], kinds[3]}
		}
		for _, k := range order {
			elapsed, err := runOnce(ctx, k, round, runTimeout)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, k.name, err)
			}
			samples[k.name] = append(samples[k.name], elapsed)
			fmt.Printf("round %2d  %-14s %8.1f ms\n", round, k.name, milliseconds(elapsed))
		}
	}

	printReport(samples)
	return nil
}

// kind is one way to start the SSH container. start returns the time from
// the first request to the SSH banner and leaves no container behind.
type kind struct {
	name  string
	start func(ctx context.Context, round int) (time.Duration, error)
}

const (
	kindRaw          = "raw docker"
	kindDocker       = "nomad docker"
	kindSSHRerun     = "nomad sshrerun"
	kindRawEarly     = "raw early"
	kindRawEarlyEcho = "raw early echo"
)

func runOnce(ctx context.Context, k kind, round int, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return k.start(ctx, round)
}
