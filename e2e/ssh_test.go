//go:build e2e

// Package e2e runs the plugin in a real Nomad v1.6.3 agent against the real
// Docker engine, with AWS's metadata mock as the instance metadata service
// and OpenSSH's ssh client as the user. Run it with `make e2e`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// env is one metadata mock and one Nomad agent, shared by a test.
type env struct {
	dir          string
	mock         *harness.MetadataMock
	agent        *harness.Agent
	docker       *client.Client
	key          *harness.UserKey
	overrideFile string
}

// newEnv starts the metadata mock, with IMDSv2 required and public-ipv4
// set to 127.0.0.1, and a Nomad agent whose plugin uses it. When override
// is not empty it is written to the override file before the agent starts.
func newEnv(t *testing.T, override string) *env {
	t.Helper()
	for _, path := range []string{harness.PluginBinary(), harness.NomadBinary(), harness.MockBinary()} {
		_, err := os.Stat(path)
		require.NoError(t, err, "missing %s: run `make e2e`, which builds it", path)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	e := &env{dir: t.TempDir()}
	e.overrideFile = filepath.Join(e.dir, "public-ipv4")
	if override != "" {
		require.NoError(t, os.WriteFile(e.overrideFile, []byte(override+"\n"), 0o644))
	}

	var err error
	e.docker, err = harness.NewDockerClient()
	require.NoError(t, err)
	t.Cleanup(func() { e.docker.Close() })

	e.key, err = harness.NewUserKey(e.dir)
	require.NoError(t, err)

	e.mock, err = harness.StartMetadataMock(ctx, e.dir, map[string]string{
		"public-ipv4": "127.0.0.1",
		"local-ipv4":  "127.0.0.1",
	}, true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.mock.Stop(10 * time.Second) })

	e.agent, err = harness.StartAgent(ctx, harness.AgentOptions{
		Dir:          e.dir,
		OverrideFile: e.overrideFile,
		IMDSEndpoint: e.mock.Endpoint,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := e.agent.Stop(30 * time.Second); err != nil {
			t.Errorf("stopping the agent: %v", err)
		}
		if err := e.agent.Unmount(); err != nil {
			t.Errorf("unmounting the agent's task directories: %v", err)
		}
		if t.Failed() {
			t.Logf("agent log: %s", e.agent.LogPath)
		}
	})
	return e
}

// runJob registers the example job and returns the alloc ID and the ssh
// event, removing the job's containers when the test ends.
func (e *env) runJob(t *testing.T) (string, *harness.ReadyEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	jobID, err := e.agent.RunJob(filepath.Join(harness.RepoRoot(), "example.nomad.hcl"),
		fmt.Sprintf("authorized_key = %q\n", e.key.AuthorizedKey))
	require.NoError(t, err)

	allocID, event, err := e.agent.WaitForReady(ctx, jobID, "build")
	if allocID != "" {
		t.Cleanup(func() {
			cleanupCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = harness.RemoveContainers(cleanupCtx, e.docker, allocID)
		})
	}
	require.NoError(t, err)
	return allocID, event
}

func TestSSH_LoginThroughAdvertisedAddress(t *testing.T) {
	e := newEnv(t, "")
	allocID, event := e.runJob(t)

	// the event reports the metadata address and the host port
	require.Equal(t, "127.0.0.1", event.Details["ssh_host"])
	require.Equal(t, "imds-public", event.Details["advertise_source"])
	require.Equal(t, "root", event.Details["ssh_user"])
	require.True(t, strings.HasPrefix(event.Details["host_key_fingerprint"], "SHA256:"), "fingerprint %q", event.Details["host_key_fingerprint"])
	port, err := strconv.Atoi(event.Details["ssh_port"])
	require.NoError(t, err)
	require.GreaterOrEqual(t, port, 64535)
	require.LessOrEqual(t, port, 65535)
	require.Equal(t, fmt.Sprintf("ssh -p %d root@127.0.0.1  # host key %s", port, event.Details["host_key_fingerprint"]), event.Message)

	// the node attributes carry the same address
	attrs, err := e.agent.NodeAttributes()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", attrs["driver.sshrerun.advertise.ipv4"])
	require.Equal(t, "imds-public", attrs["driver.sshrerun.advertise.source"])

	// OpenSSH logs in at the reported address and port
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := harness.SSHCommand(ctx, e.key, "root", event.Details["ssh_host"], port,
		"echo hello from $(hostname); echo $NOMAD_ALLOC_ID").CombinedOutput()
	require.NoError(t, err, "ssh output: %s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 2, "ssh output: %s", out)
	require.True(t, strings.HasPrefix(lines[0], "hello from "), "ssh output: %s", out)
	require.Equal(t, allocID, lines[1])

	// a session with a PTY gets a terminal
	out, err = harness.SSHCommandTTY(ctx, e.key, "root", "127.0.0.1", port, "tty").CombinedOutput()
	require.NoError(t, err, "ssh output: %s", out)
	require.Contains(t, string(out), "/dev/pts/")

	// the exit status of a remote command comes back
	err = harness.SSHCommand(ctx, e.key, "root", "127.0.0.1", port, "exit 3").Run()
	require.Error(t, err)
	require.Contains(t, err.Error(), "exit status 3")

	// stopping the job removes the container
	containers, err := harness.Containers(ctx, e.docker, allocID)
	require.NoError(t, err)
	require.Len(t, containers, 1)
	require.NoError(t, e.agent.StopJob("ci-build"))
	require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, allocID))
}

func TestSSH_OverrideFileAddress(t *testing.T) {
	// a documentation-range address: reported, never dialled
	e := newEnv(t, "203.0.113.10")
	allocID, event := e.runJob(t)

	require.Equal(t, "203.0.113.10", event.Details["ssh_host"])
	require.Equal(t, "override-file", event.Details["advertise_source"])
	require.Equal(t, "ssh -p "+event.Details["ssh_port"]+" root@203.0.113.10  # host key "+event.Details["host_key_fingerprint"], event.Message)

	attrs, err := e.agent.NodeAttributes()
	require.NoError(t, err)
	require.Equal(t, "203.0.113.10", attrs["driver.sshrerun.advertise.ipv4"])
	require.Equal(t, "override-file", attrs["driver.sshrerun.advertise.source"])

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, e.agent.StopJob("ci-build"))
	require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, allocID))
}
