package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// taskName is the task of both jobs. Both drivers name the container
// `<task>-<alloc id>`.
const taskName = "build"

// Both jobs get the same resources, port and kill timeout, so that they
// differ only in the driver.
const jobTemplate = `
job %q {
  datacenters = ["*"]
  type        = "batch"

  group "build" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }

    network {
      port "ssh" {
        to = 2222
      }
    }

    task "build" {
      driver       = %q
      kill_timeout = "2s"

      config {
%s
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
`

// dockerJob runs the mounted container init with the
// bench's init config, the same SSH server and command as the raw Docker
// container. The image is local and force_pull is off, so nothing is
// pulled.
func dockerJob(round int, configPath string) string {
	config := fmt.Sprintf(`        image   = %q
        command = %q
        args    = ["container-init", "-config", %q]
        ports   = ["ssh"]

        mount {
          type     = "bind"
          source   = %q
          target   = %q
          readonly = true
        }

        mount {
          type     = "bind"
          source   = %q
          target   = %q
          readonly = true
        }`,
		harness.TestImage, initBinaryPath, initConfigPath,
		harness.InitBinary(), initBinaryPath, configPath, initConfigPath)
	return fmt.Sprintf(jobTemplate, "bench-docker-"+strconv.Itoa(round), "docker", config)
}

// sshrerunJob runs `sleep 3600` with the driver's SSH server.
func sshrerunJob(round int, authorizedKey string) string {
	config := fmt.Sprintf(`        image   = %q
        command = "/bin/sleep"
        args    = ["3600"]

        ssh {
          port            = "ssh"
          user            = "root"
          authorized_keys = [%q]
        }`, harness.TestImage, authorizedKey)
	return fmt.Sprintf(jobTemplate, "bench-sshrerun-"+strconv.Itoa(round), "sshrerun", config)
}

// startJob parses hcl, then times Register until the SSH banner on the
// allocation's ssh port. Afterwards it deregisters the job with purge and
// waits until the task's container is gone.
func (a *agent) startJob(ctx context.Context, tracker *containerTracker, hcl string) (time.Duration, error) {
	job, err := a.Client.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: hcl, Canonicalize: true})
	if err != nil {
		return 0, fmt.Errorf("failed to parse the job: %w", err)
	}
	jobID := *job.ID

	start := time.Now()
	if _, _, err := a.Client.Jobs().Register(job, nil); err != nil {
		return 0, fmt.Errorf("failed to register job %s: %w", jobID, err)
	}
	allocID, addr, err := a.waitForPort(ctx, jobID)
	if allocID != "" {
		tracker.addName(taskName + "-" + allocID)
	}
	if err == nil {
		err = waitForBanner(ctx, addr)
	}
	elapsed := time.Since(start)

	stopErr := a.stopJob(ctx, tracker, jobID, allocID)
	if err != nil {
		return 0, fmt.Errorf("job %s: %w", jobID, err)
	}
	return elapsed, stopErr
}

// waitForPort polls every 10ms until the job has an allocation with a host
// port for the label "ssh", and returns the allocation ID and the address.
// The scheduler picks the port, so it is known before the task starts.
func (a *agent) waitForPort(ctx context.Context, jobID string) (string, string, error) {
	var last string
	for {
		stubs, _, err := a.Client.Jobs().Allocations(jobID, false, nil)
		switch {
		case err != nil:
			last = err.Error()
		case len(stubs) == 0:
			last = "no allocation yet"
		default:
			allocID := stubs[0].ID
			alloc, _, err := a.Client.Allocations().Info(allocID, nil)
			if err != nil {
				last = err.Error()
				break
			}
			if addr := sshAddress(alloc); addr != "" {
				return allocID, addr, nil
			}
			last = "allocation " + allocID + " has no ssh port yet"
		}

		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("no ssh port for job %s: %s", jobID, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func sshAddress(alloc *api.Allocation) string {
	if alloc.AllocatedResources == nil {
		return ""
	}
	for _, port := range alloc.AllocatedResources.Shared.Ports {
		if port.Label == "ssh" && port.Value > 0 {
			host := port.HostIP
			if host == "" {
				host = "127.0.0.1"
			}
			return net.JoinHostPort(host, strconv.Itoa(port.Value))
		}
	}
	return ""
}

// stopJob deregisters the job with purge and waits until its container is
// gone, so that the next run starts on an idle engine.
func (a *agent) stopJob(ctx context.Context, tracker *containerTracker, jobID, allocID string) error {
	if _, _, err := a.Client.Jobs().Deregister(jobID, true, nil); err != nil {
		return fmt.Errorf("failed to stop job %s: %w", jobID, err)
	}
	if allocID == "" {
		return nil
	}

	// the run's own context may have ended, so the wait gets a fresh limit
	waitCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := taskName + "-" + allocID
	for {
		ids, err := containersNamed(waitCtx, tracker.docker, name)
		if err == nil && len(ids) == 0 {
			return nil
		}
		select {
		case <-waitCtx.Done():
			return fmt.Errorf("container %s of job %s still exists a minute after the stop: %v (%v)", name, jobID, ids, err)
		case <-ctx.Done():
			return fmt.Errorf("stopping job %s: %w", jobID, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
