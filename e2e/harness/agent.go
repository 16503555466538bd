package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/api"
)

// AgentOptions configures a Nomad agent that runs a server and a client
// on 127.0.0.1.
type AgentOptions struct {
	// Dir holds the agent's config, data dir and log.
	Dir string

	// OverrideFile and IMDSEndpoint go into the plugin's advertise block.
	OverrideFile string
	IMDSEndpoint string

	// DockerVolumes lets Nomad's docker driver bind-mount host paths,
	// which a docker job that mounts the plugin binary needs.
	DockerVolumes bool

	// Drivers are the drivers that must be healthy before StartAgent
	// returns; empty means sshrerun alone.
	Drivers []string
}

// Agent is a running Nomad agent.
type Agent struct {
	*Process
	Client     *api.Client
	Address    string
	ConfigPath string

	// drivers are the drivers that a restart waits for.
	drivers []string
}

// StartAgent writes the config and starts `nomad agent`, then waits until
// the client is ready and the sshrerun driver is healthy.
func StartAgent(ctx context.Context, opts AgentOptions) (*Agent, error) {
	ports := make([]int, 3)
	for i := range ports {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = port
	}
	httpPort, rpcPort, serfPort := ports[0], ports[1], ports[2]

	dataDir := filepath.Join(opts.Dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the agent's data dir: %w", err)
	}
	hostVolume := HostVolumePath(opts.Dir)
	if err := os.MkdirAll(hostVolume, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the host volume's directory: %w", err)
	}
	configPath := filepath.Join(opts.Dir, "agent.hcl")
	config := agentHCL{
		DataDir: dataDir, HTTP: httpPort, RPC: rpcPort, Serf: serfPort,
		Server: true,
		Client: &clientHCL{
			Servers: []string{"127.0.0.1:" + strconv.Itoa(rpcPort)},
			MinPort: 64535, MaxPort: 65535,
			OverrideFile: opts.OverrideFile, IMDSEndpoint: opts.IMDSEndpoint,
			DockerVolumes: opts.DockerVolumes,
			HostVolume:    hostVolume,
		},
	}.render()
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write the agent config: %w", err)
	}

	drivers := opts.Drivers
	if len(drivers) == 0 {
		drivers = []string{"sshrerun"}
	}
	return startAgentWithConfig(ctx, opts.Dir, configPath, "127.0.0.1:"+strconv.Itoa(httpPort), drivers)
}

// HostVolumeName is the host volume of the agent that StartAgent starts.
const HostVolumeName = "sshrerun-e2e"

// HostVolumePath returns the directory of the host volume HostVolumeName
// of the agent that StartAgent starts in dir.
func HostVolumePath(dir string) string { return filepath.Join(dir, "host-volume") }

// Restart starts the agent again with the same config and data dir, after
// it was stopped or killed.
func (a *Agent) Restart(ctx context.Context) (*Agent, error) {
	if !a.Exited() {
		return nil, fmt.Errorf("agent pid %d is still running", a.PID())
	}
	return startAgentWithConfig(ctx, filepath.Dir(a.ConfigPath), a.ConfigPath, a.Address, a.drivers)
}

// startAgentWithConfig launches the agent and waits until its client is
// ready and the drivers are healthy.
func startAgentWithConfig(ctx context.Context, dir, configPath, address string, drivers []string) (*Agent, error) {
	agent, err := launchAgent(dir, configPath, address, drivers)
	if err != nil {
		return nil, err
	}

	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := agent.WaitForDrivers(waitCtx, drivers...); err != nil {
		_ = agent.Stop(10 * time.Second)
		return nil, fmt.Errorf("%w; the agent log %s ends with:\n%s", err, agent.LogPath, logTail(agent.LogPath, 30))
	}
	return agent, nil
}

// launchAgent starts `nomad agent -config configPath` with its log in dir
// and returns at once, with an API client for address.
func launchAgent(dir, configPath, address string, drivers []string) (*Agent, error) {
	logName := fmt.Sprintf("nomad-%d.log", time.Now().UnixNano())
	proc, err := startProcess("nomad agent", filepath.Join(dir, logName), SafetyEnv(), NomadBinary(), "agent", "-config", configPath)
	if err != nil {
		return nil, err
	}

	client, err := api.NewClient(&api.Config{Address: "http://" + address})
	if err != nil {
		_ = proc.Stop(10 * time.Second)
		return nil, fmt.Errorf("failed to create the Nomad API client: %w", err)
	}
	return &Agent{Process: proc, Client: client, Address: address, ConfigPath: configPath, drivers: drivers}, nil
}

// WaitForDrivers polls until the client node is ready and reports each of
// the drivers as healthy.
func (a *Agent) WaitForDrivers(ctx context.Context, drivers ...string) error {
	var last string
	for {
		if a.Exited() {
			return fmt.Errorf("the agent exited: %v", a.err)
		}
		last = a.driverProblem(drivers)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Nomad client did not become ready: %s", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// driverProblem returns why the node is not ready yet, or "" when it is.
func (a *Agent) driverProblem(drivers []string) string {
	nodes, _, err := a.Client.Nodes().List(nil)
	if err != nil {
		return err.Error()
	}
	if len(nodes) == 0 {
		return "no client node registered yet"
	}
	node, _, err := a.Client.Nodes().Info(nodes[0].ID, nil)
	if err != nil {
		return err.Error()
	}
	if node.Status != "ready" {
		return "node status " + node.Status
	}
	for _, name := range drivers {
		info := node.Drivers[name]
		switch {
		case info == nil:
			return "the " + name + " driver is not fingerprinted yet"
		case !info.Healthy:
			return "the " + name + " driver is unhealthy: " + info.HealthDescription
		}
	}
	return ""
}

// NodeAttributes returns the client node's attributes.
func (a *Agent) NodeAttributes() (map[string]string, error) {
	nodes, _, err := a.Client.Nodes().List(nil)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no client node registered")
	}
	node, _, err := a.Client.Nodes().Info(nodes[0].ID, nil)
	if err != nil {
		return nil, err
	}
	return node.Attributes, nil
}

// LogContains reports whether the agent's log contains s.
func (a *Agent) LogContains(s string) (bool, error) {
	data, err := os.ReadFile(a.LogPath)
	if err != nil {
		return false, err
	}
	return strings.Contains(string(data), s), nil
}

// Unmount unmounts what the Nomad client mounted under the agent's
// directory, such as each task's tmpfs secrets directory, so that the
// directory can be removed. Call it after the agent stopped: a stopped
// client leaves its mounts in place for the next start to restore.
func (a *Agent) Unmount() error {
	dir := filepath.Dir(a.ConfigPath)
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("failed to read the mount table: %w", err)
	}

	// unmount the deepest paths first
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))

	var errs []error
	for _, mount := range mounts {
		if err := syscall.Unmount(mount, 0); err != nil {
			errs = append(errs, fmt.Errorf("failed to unmount %s: %w", mount, err))
		}
	}
	return errors.Join(errs...)
}

// logTail returns the last lines of the log at path, for error messages
// that outlive the test's temporary directory.
func logTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// PluginPIDs returns the PIDs of the agent's child processes that run the
// plugin binary.
func (a *Agent) PluginPIDs() ([]int, error) {
	return pluginPIDs(func(parent, _ int) bool { return parent == a.PID() })
}

// PluginPIDsInGroup returns the PIDs of the processes in the agent's
// process group that run the plugin binary, including those whose agent
// has exited.
func (a *Agent) PluginPIDsInGroup() ([]int, error) {
	return pluginPIDs(func(_, group int) bool { return group == a.PID() })
}

// pluginPIDs returns the PIDs of the processes that run the plugin binary
// and whose parent PID and process group ID match.
func pluginPIDs(match func(parent, group int) bool) ([]int, error) {
	processes, err := listProcesses()
	if err != nil {
		return nil, err
	}
	plugin, err := filepath.EvalSymlinks(PluginBinary())
	if err != nil {
		return nil, err
	}

	var pids []int
	for _, p := range processes {
		if !match(p.parent, p.group) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.pid), "exe"))
		if err == nil && exe == plugin {
			pids = append(pids, p.pid)
		}
	}
	return pids, nil
}
