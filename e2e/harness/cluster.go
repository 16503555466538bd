package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ClientOptions configures one client of a cluster.
type ClientOptions struct {
	Name         string
	OverrideFile string
	IMDSEndpoint string

	// MinPort and MaxPort bound the client's dynamic ports, which the SSH
	// host ports come from.
	MinPort, MaxPort int
}

// Cluster is one Nomad server and its clients, each an agent of its own on
// 127.0.0.1 with its own data dir.
type Cluster struct {
	Server  *Agent
	Clients []*Agent
}

// StartCluster starts a server and one client agent per entry of clients,
// and waits until every client is ready with a healthy sshrerun driver.
func StartCluster(ctx context.Context, dir string, clients []ClientOptions) (*Cluster, error) {
	cluster := &Cluster{}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	serverDir := filepath.Join(dir, "server")
	if err := os.MkdirAll(filepath.Join(serverDir, "data"), 0o700); err != nil {
		return nil, err
	}
	config := agentHCL{
		Name: "server", DataDir: filepath.Join(serverDir, "data"),
		HTTP: ports[0], RPC: ports[1], Serf: ports[2], Server: true,
	}.render()
	server, err := startConfiguredAgent(serverDir, config, "127.0.0.1:"+strconv.Itoa(ports[0]))
	if err != nil {
		return nil, err
	}
	cluster.Server = server
	serverRPC := "127.0.0.1:" + strconv.Itoa(ports[1])

	for _, opts := range clients {
		clientPorts, err := freePorts(3)
		if err != nil {
			cluster.Stop()
			return nil, err
		}
		clientDir := filepath.Join(dir, opts.Name)
		if err := os.MkdirAll(filepath.Join(clientDir, "data"), 0o700); err != nil {
			cluster.Stop()
			return nil, err
		}
		config := agentHCL{
			Name: opts.Name, DataDir: filepath.Join(clientDir, "data"),
			HTTP: clientPorts[0], RPC: clientPorts[1], Serf: clientPorts[2],
			Client: &clientHCL{
				Servers: []string{serverRPC},
				MinPort: opts.MinPort, MaxPort: opts.MaxPort,
				OverrideFile: opts.OverrideFile, IMDSEndpoint: opts.IMDSEndpoint,
			},
		}.render()
		client, err := startConfiguredAgent(clientDir, config, "127.0.0.1:"+strconv.Itoa(clientPorts[0]))
		if err != nil {
			cluster.Stop()
			return nil, err
		}
		cluster.Clients = append(cluster.Clients, client)
	}

	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := cluster.waitForClients(waitCtx, len(clients)); err != nil {
		cluster.Stop()
		return nil, err
	}
	return cluster, nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = port
	}
	return ports, nil
}

// startConfiguredAgent writes config into dir and launches an agent with
// it, without waiting for the agent to be ready.
func startConfiguredAgent(dir, config, address string) (*Agent, error) {
	configPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write the agent config: %w", err)
	}
	return launchAgent(dir, configPath, address, nil)
}

// waitForClients polls the server until n nodes are ready with a healthy
// sshrerun driver.
func (c *Cluster) waitForClients(ctx context.Context, n int) error {
	var last string
	for {
		nodes, _, err := c.Server.Client.Nodes().List(nil)
		ready := 0
		if err != nil {
			last = err.Error()
		}
		for _, stub := range nodes {
			node, _, err := c.Server.Client.Nodes().Info(stub.ID, nil)
			if err != nil {
				last = err.Error()
				continue
			}
			if info := node.Drivers["sshrerun"]; node.Status == "ready" && info != nil && info.Healthy {
				ready++
			} else {
				last = fmt.Sprintf("node %s is %s", node.Name, node.Status)
			}
		}
		if ready == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d clients are ready: %s", ready, n, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Stop stops the clients, then the server, by their PIDs, and unmounts the
// clients' task directories.
func (c *Cluster) Stop() {
	for _, client := range c.Clients {
		_ = client.Stop(30 * time.Second)
		_ = client.Unmount()
	}
	if c.Server != nil {
		_ = c.Server.Stop(30 * time.Second)
	}
}
