//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/hashicorp/nomad/api"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// batchJob is a one-task batch job without SSH; %s are the job ID, the
// task's extra config lines and its memory in MB.
const batchJob = `
job %q {
  datacenters = ["*"]
  type        = "batch"

  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }

    task "work" {
      driver = "sshrerun"

      config {
%s
      }

      resources {
        cpu    = 100
        memory = %d
      }
    }
  }
}
`

// runBatch registers a batch job and waits until its task is dead.
func (e *env) runBatch(t *testing.T, jobID, config string, memoryMB int) (string, *api.TaskState) {
	t.Helper()
	return e.runUntilDead(t, jobID, fmt.Sprintf(batchJob, jobID, config, memoryMB))
}

// runUntilDead registers the job in hcl, whose ID is jobID, and waits
// until its task "work" is dead.
func (e *env) runUntilDead(t *testing.T, jobID, hcl string) (string, *api.TaskState) {
	t.Helper()
	_, err := e.agent.RunJobHCL(hcl, "")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var allocID string
	for allocID == "" {
		stubs, _, err := e.agent.Client.Jobs().Allocations(jobID, false, nil)
		require.NoError(t, err)
		if len(stubs) > 0 {
			allocID = stubs[0].ID
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s got no allocation", jobID)
		case <-time.After(250 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		cleanupCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = harness.RemoveContainers(cleanupCtx, e.docker, allocID)
	})

	state, err := e.agent.WaitForTaskState(ctx, allocID, "work", "dead")
	require.NoError(t, err)
	return allocID, state
}

func TestResources_OOMKillReported(t *testing.T) {
	e := newEnv(t, "")
	_, state := e.runBatch(t, "oom", `
        image   = "nomad-driver-sshrerun/busybox:local"
        command = "/bin/tail"
        args    = ["/dev/zero"]`, 16)

	require.True(t, state.Failed)
	var terminated *api.TaskEvent
	for _, event := range state.Events {
		if event.Type == api.TaskTerminated {
			terminated = event
		}
	}
	require.NotNil(t, terminated, "no Terminated event")
	require.Equal(t, "true", terminated.Details["oom_killed"])
	require.Equal(t, 137, terminated.ExitCode)
}

func TestLogs_ShortTaskKeepsLine(t *testing.T) {
	e := newEnv(t, "")
	allocID, state := e.runBatch(t, "short", `
        image   = "nomad-driver-sshrerun/busybox:local"
        command = "/bin/echo"
        args    = ["one line, then exit"]`, 32)
	require.False(t, state.Failed)

	out := e.pollNomad(t, func(s string) bool { return strings.Contains(s, "one line") }, "alloc", "logs", allocID, "work")
	require.Equal(t, "one line, then exit\n", out)
}

func TestImages_PullFromRegistry(t *testing.T) {
	e := newEnv(t, "")
	_, err := os.Stat(harness.RegistryBinary())
	require.NoError(t, err, "missing the registry: run `make e2e`, which builds it")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	registry, err := harness.StartRegistry(ctx, t.TempDir(), "ci", "s3cret")
	require.NoError(t, err)
	t.Cleanup(func() { _ = registry.Stop(10 * time.Second) })
	ref := fmt.Sprintf("%s/sshrerun/busybox:%s", registry.Address, uuid.Short())
	require.NoError(t, registry.PushImage(ctx, e.docker, harness.TestImage, ref))
	t.Cleanup(func() { _, _ = e.docker.ImageRemove(context.Background(), ref, image.RemoveOptions{}) })

	// good credentials: the image is pulled and the task runs
	_, state := e.runBatch(t, "pull-good", fmt.Sprintf(`
        image   = %q
        command = "/bin/true"
        auth {
          username = "ci"
          password = "s3cret"
        }`, ref), 32)
	require.False(t, state.Failed)
	require.True(t, hasEvent(state.Events, "Downloading image "+ref), "events: %v", state.Events)

	// wrong credentials: the task fails with a message that names the image
	_, err = e.docker.ImageRemove(ctx, ref, image.RemoveOptions{})
	require.NoError(t, err)
	_, state = e.runBatch(t, "pull-bad", fmt.Sprintf(`
        image   = %q
        command = "/bin/true"
        auth {
          username = "ci"
          password = "wrong"
        }`, ref), 32)
	require.True(t, state.Failed)
	require.True(t, hasEvent(state.Events, fmt.Sprintf("failed to pull image %q", ref)), "events: %v", state.Events)
}

// hasEvent reports whether an event's message contains text.
func hasEvent(events []*api.TaskEvent, text string) bool {
	for _, event := range events {
		if strings.Contains(event.DisplayMessage, text) {
			return true
		}
	}
	return false
}

// stopJob is a service job whose script exits with 42 on SIGINT and
// ignores SIGTERM; %s are the job ID, the kill signal and the kill timeout.
const stopJob = `
job %q {
  datacenters = ["*"]
  type        = "service"

  group "g" {
    task "work" {
      driver       = "sshrerun"
      kill_signal  = %q
      kill_timeout = %q

      config {
        image   = "nomad-driver-sshrerun/busybox:local"
        command = "/bin/sh"
        args    = ["-c", "trap 'exit 42' INT; trap '' TERM; echo ready; while :; do sleep 0.1; done"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`

func TestStop_KillSignalAndTimeout(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		jobID, signal, timeout string
		exitCode               int
	}{
		// the job traps SIGINT and exits with 42
		{"stop-signal", "SIGINT", "30s", 42},
		// the job ignores SIGTERM, so the kill after the timeout ends it
		{"stop-timeout", "SIGTERM", "1s", 137},
	}
	for _, tc := range cases {
		t.Run(tc.jobID, func(t *testing.T) {
			_, err := e.agent.RunJobHCL(fmt.Sprintf(stopJob, tc.jobID, tc.signal, tc.timeout), "")
			require.NoError(t, err)

			// wait until the script has set its traps
			var allocID string
			e.pollNomad(t, func(s string) bool {
				stubs, _, err := e.agent.Client.Jobs().Allocations(tc.jobID, false, nil)
				if err != nil || len(stubs) == 0 {
					return false
				}
				allocID = stubs[0].ID
				out, err := e.nomad("alloc", "logs", allocID, "work")
				return err == nil && strings.Contains(out, "ready")
			}, "status")
			t.Cleanup(func() {
				cleanupCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_ = harness.RemoveContainers(cleanupCtx, e.docker, allocID)
			})

			out, err := e.nomad("job", "stop", "-detach", tc.jobID)
			require.NoError(t, err, out)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			state, err := e.agent.WaitForTaskState(ctx, allocID, "work", "dead")
			require.NoError(t, err)
			require.Equal(t, tc.exitCode, terminatedExitCode(state.Events))
			require.NoError(t, harness.WaitForNoContainers(ctx, e.docker, allocID))
		})
	}
}

// groupJob is a one-task batch job whose group and task take extra
// blocks; %s are the job ID, the group's blocks, the task's blocks and the
// task's config lines. Without a resources block, the task gets Nomad's
// default resources.
const groupJob = `
job %q {
  datacenters = ["*"]
  type        = "batch"

  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
%s
    task "work" {
      driver = "sshrerun"
%s
      config {
        image = "nomad-driver-sshrerun/busybox:local"
%s
      }
    }
  }
}
`

// A host volume of the client reaches the task through volume_mount: the
// job writes to it, and the file is in the volume's directory on the host.
func TestVolumes_HostVolumeMounted(t *testing.T) {
	e := newEnv(t, "")
	job := fmt.Sprintf(groupJob, "volume", fmt.Sprintf(`
    volume "cache" {
      type      = "host"
      source    = %q
      read_only = false
    }`, harness.HostVolumeName), `
      volume_mount {
        volume      = "cache"
        destination = "/cache"
      }`, `
        command = "/bin/sh"
        args    = ["-c", "echo written by $NOMAD_ALLOC_ID > /cache/result"]`)
	allocID, state := e.runUntilDead(t, "volume", job)
	require.False(t, state.Failed, "events: %v", state.Events)

	written, err := os.ReadFile(filepath.Join(harness.HostVolumePath(e.dir), "result"))
	require.NoError(t, err)
	require.Equal(t, "written by "+allocID+"\n", string(written))
}

// The dns block of the group's network, in Nomad's default host mode,
// becomes the container's resolv.conf.
func TestNetwork_DNSBlock(t *testing.T) {
	e := newEnv(t, "")
	job := fmt.Sprintf(groupJob, "dns", `
    network {
      dns {
        servers  = ["192.0.2.53"]
        searches = ["ci.example"]
        options  = ["ndots:2"]
      }
    }`, "", `
        command = "/bin/cat"
        args    = ["/etc/resolv.conf"]`)
	allocID, state := e.runUntilDead(t, "dns", job)
	require.False(t, state.Failed, "events: %v", state.Events)

	out := e.pollNomad(t, func(s string) bool { return strings.Contains(s, "nameserver") }, "alloc", "logs", allocID, "work")
	for _, line := range []string{"nameserver 192.0.2.53", "search ci.example", "options ndots:2"} {
		require.Contains(t, out, line+"\n")
	}
}

// A task that reserves a core with resources.cores runs on that core only.
func TestResources_ReservedCorePinsContainer(t *testing.T) {
	require.Greater(t, runtime.NumCPU(), 1, "this test needs two cores to tell a pinned container from an unpinned one")
	e := newEnv(t, "")
	job := fmt.Sprintf(groupJob, "cores", "", `
      resources {
        cores  = 1
        memory = 32
      }`, `
        command = "/bin/grep"
        args    = ["Cpus_allowed_list", "/proc/self/status"]`)
	allocID, state := e.runUntilDead(t, "cores", job)
	require.False(t, state.Failed, "events: %v", state.Events)

	// one core, such as "1"; an unpinned container lists all, such as "0-1"
	out := e.pollNomad(t, func(s string) bool { return strings.Contains(s, "Cpus_allowed_list") }, "alloc", "logs", allocID, "work")
	require.Regexp(t, `^Cpus_allowed_list:\t\d+\n$`, out)
}
