// Command demo shows the product end to end on one machine. It starts AWS's
// metadata mock and a Nomad agent with the plugin on 127.0.0.1, and runs
// example.nomad.hcl with a fresh key. Then it prints the ssh command from
// the task's event, runs it with OpenSSH, and stops everything it started.
//
// Run it with `make demo`, which builds the plugin, the agent, the mock and
// the busybox image first.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := run(ctx)
	// the agent's log collectors outlive it, by design of Nomad's client
	harness.StopLeftovers()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (err error) {
	dir, err := os.MkdirTemp("", "sshrerun-demo-")
	if err != nil {
		return err
	}
	fmt.Printf("==> working directory %s\n", dir)

	// the metadata mock replaces AWS instance metadata, with IMDSv2 required
	mock, err := harness.StartMetadataMock(ctx, dir, map[string]string{"public-ipv4": "127.0.0.1", "local-ipv4": "127.0.0.1"}, true)
	if err != nil {
		return err
	}
	defer stopProcess(mock.Process)
	fmt.Printf("==> metadata mock (pid %d) serves public-ipv4 127.0.0.1 at %s\n", mock.PID(), mock.Endpoint)

	// the agent's override file does not exist, so the address comes from
	// the metadata mock
	agent, err := harness.StartAgent(ctx, harness.AgentOptions{
		Dir:          dir,
		OverrideFile: filepath.Join(dir, "public-ipv4"),
		IMDSEndpoint: mock.Endpoint,
	})
	if err != nil {
		return err
	}
	defer func() {
		stopProcess(agent.Process)
		if err := agent.Unmount(); err != nil {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
		}
	}()
	fmt.Printf("==> nomad agent (pid %d) at http://%s, log %s\n", agent.PID(), agent.Address, agent.LogPath)

	docker, err := harness.NewDockerClient()
	if err != nil {
		return err
	}
	defer docker.Close()

	key, err := harness.NewUserKey(dir)
	if err != nil {
		return err
	}

	// run the example job with the fresh key
	jobID, err := agent.RunJob(filepath.Join(harness.RepoRoot(), "example.nomad.hcl"), fmt.Sprintf("authorized_key = %q\n", key.AuthorizedKey))
	if err != nil {
		return err
	}
	fmt.Printf("==> job %s registered\n", jobID)

	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	allocID, event, err := agent.WaitForReady(waitCtx, jobID, "build")
	if allocID != "" {
		defer removeContainers(docker, allocID)
	}
	if err != nil {
		return err
	}
	fmt.Printf("==> the task's driver event: %s\n", event.Message)
	for _, key := range []string{"ssh_host", "ssh_port", "ssh_user", "advertise_source", "host_key_fingerprint"} {
		fmt.Printf("    %s = %s\n", key, event.Details[key])
	}

	// log in with OpenSSH at the reported address
	port, err := strconv.Atoi(event.Details["ssh_port"])
	if err != nil {
		return fmt.Errorf("invalid ssh_port in the event: %w", err)
	}
	cmd := harness.SSHCommand(waitCtx, key, event.Details["ssh_user"], event.Details["ssh_host"], port, "uname -a; echo job: $NOMAD_JOB_NAME alloc: $NOMAD_ALLOC_ID")
	fmt.Printf("==> running: ssh -p %d -i %s %s@%s 'uname -a; ...'\n", port, key.PrivatePath, event.Details["ssh_user"], event.Details["ssh_host"])
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ssh login failed: %w", err)
	}

	// let the job's command finish: the container then waits for SSH
	// users, until a stop ends the wait
	if err := harness.SSHCommand(waitCtx, key, event.Details["ssh_user"], event.Details["ssh_host"], port, "touch /tmp/done").Run(); err != nil {
		return fmt.Errorf("ssh failed: %w", err)
	}
	exited, err := agent.WaitForEvent(waitCtx, allocID, "build", "exited with code")
	if err != nil {
		return err
	}
	fmt.Printf("==> the task's driver event: %s\n", exited.DisplayMessage)

	if err := agent.StopJob(jobID); err != nil {
		return err
	}
	if err := harness.WaitForNoContainers(waitCtx, docker, allocID); err != nil {
		return err
	}
	fmt.Printf("==> job stopped and its container removed\n")
	return nil
}

func stopProcess(p *harness.Process) {
	if err := p.Stop(30 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
		return
	}
	fmt.Printf("==> stopped %s (pid %d)\n", p.Name, p.PID())
}

// removeContainers removes what the job left behind after a failure, by
// container ID.
func removeContainers(docker *client.Client, allocID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := harness.RemoveContainers(ctx, docker, allocID); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
}
