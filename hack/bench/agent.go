package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// agent is a Nomad agent that runs both Nomad's docker driver and
// sshrerun.
type agent struct {
	*harness.Agent
}

// startAgent writes an override file that holds 127.0.0.1 into dir and
// starts a Nomad agent with e2e/harness, which denies the cloud
// fingerprinters and points their URLs at a closed loopback port. The
// docker plugin gets volumes, because the docker job bind-mounts the
// plugin binary and the init config from host paths outside the alloc dir.
func startAgent(ctx context.Context, dir string) (*agent, error) {
	overridePath := filepath.Join(dir, "public-ipv4")
	if err := os.WriteFile(overridePath, []byte("127.0.0.1\n"), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write the override file: %w", err)
	}

	// the override file exists, so the driver sends no request to the
	// closed loopback port that imds_endpoint names
	a, err := harness.StartAgent(ctx, harness.AgentOptions{
		Dir:           dir,
		OverrideFile:  overridePath,
		IMDSEndpoint:  harness.ClosedLoopbackURL,
		DockerVolumes: true,
		Drivers:       []string{"docker", "sshrerun"},
	})
	if err != nil {
		return nil, err
	}
	return &agent{a}, nil
}

// stop stops the agent by its PID and unmounts the client's task
// directories.
func (a *agent) stop() {
	if err := a.Stop(30 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	} else {
		fmt.Printf("==> stopped nomad agent (pid %d)\n", a.PID())
	}
	if err := a.Unmount(); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
}
