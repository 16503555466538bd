//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// spreadJob runs four SSH tasks spread over the clients.
const spreadJob = `
variable "authorized_key" {
  type = string
}

job "spread" {
  datacenters = ["*"]
  type        = "service"

  spread {
    attribute = "${node.unique.name}"
  }

  group "g" {
    count = 4

    network {
      port "ssh" {}
    }

    task "work" {
      driver = "sshrerun"

      config {
        image   = "nomad-driver-sshrerun/busybox:local"
        command = "/bin/sh"
        args    = ["-c", "while :; do sleep 1; done"]

        ssh {
          port            = "ssh"
          authorized_keys = [var.authorized_key]
        }
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
`

func TestCluster_EachClientAdvertisesItsOwnAddress(t *testing.T) {
	dir := t.TempDir()
	docker, err := harness.NewDockerClient()
	require.NoError(t, err)
	t.Cleanup(func() { docker.Close() })
	key, err := harness.NewUserKey(dir)
	require.NoError(t, err)

	// two clients, each with its own override file (documentation-range
	// addresses, never dialled) and its own port range
	clients := []harness.ClientOptions{
		{Name: "client-a", MinPort: 64535, MaxPort: 65034},
		{Name: "client-b", MinPort: 65035, MaxPort: 65535},
	}
	addresses := map[string]string{"client-a": "203.0.113.21", "client-b": "198.51.100.22"}
	for i := range clients {
		clients[i].OverrideFile = filepath.Join(dir, clients[i].Name+"-public-ipv4")
		clients[i].IMDSEndpoint = harness.ClosedLoopbackURL
		require.NoError(t, os.WriteFile(clients[i].OverrideFile, []byte(addresses[clients[i].Name]+"\n"), 0o644))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cluster, err := harness.StartCluster(ctx, dir, clients)
	require.NoError(t, err)
	t.Cleanup(cluster.Stop)

	server := cluster.Server
	_, err = server.RunJobHCL(spreadJob, fmt.Sprintf("authorized_key = %q\n", key.AuthorizedKey))
	require.NoError(t, err)
	t.Cleanup(func() {
		stubs, _, _ := server.Client.Jobs().Allocations("spread", true, nil)
		for _, stub := range stubs {
			_ = harness.RemoveContainers(context.Background(), docker, stub.ID)
		}
	})

	// every allocation reports its own client's address and a port in its
	// client's range
	ranges := map[string][2]int{}
	for _, c := range clients {
		ranges[c.Name] = [2]int{c.MinPort, c.MaxPort}
	}
	perNode := map[string]int{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		stubs, _, err := server.Client.Jobs().Allocations("spread", false, nil)
		require.NoError(t, err)
		perNode = map[string]int{}
		reported := 0
		for _, stub := range stubs {
			state := stub.TaskStates["work"]
			if state == nil {
				continue
			}
			for _, event := range state.Events {
				if event.Details["ssh_port"] == "" {
					continue
				}
				reported++
				perNode[stub.NodeName]++
				require.Equal(t, addresses[stub.NodeName], event.Details["ssh_host"], "alloc %s on %s", stub.ID, stub.NodeName)
				require.Equal(t, "override-file", event.Details["advertise_source"])
				port, err := strconv.Atoi(event.Details["ssh_port"])
				require.NoError(t, err)
				require.GreaterOrEqual(t, port, ranges[stub.NodeName][0], "alloc %s on %s", stub.ID, stub.NodeName)
				require.LessOrEqual(t, port, ranges[stub.NodeName][1], "alloc %s on %s", stub.ID, stub.NodeName)
				break
			}
		}
		if reported == 4 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d of 4 allocations reported their ssh command", reported)
		time.Sleep(500 * time.Millisecond)
	}
	require.Len(t, perNode, 2, "allocations per client: %v", perNode)

	// stopping the job removes every container
	stubs, _, err := server.Client.Jobs().Allocations("spread", true, nil)
	require.NoError(t, err)
	require.Len(t, stubs, 4)
	require.NoError(t, server.StopJob("spread"))
	for _, stub := range stubs {
		require.NoError(t, harness.WaitForNoContainers(ctx, docker, stub.ID))
	}
}
