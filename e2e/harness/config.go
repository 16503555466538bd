package harness

import (
	"fmt"
	"path/filepath"
	"strings"
)

// agentHCL describes one Nomad agent on 127.0.0.1: a server, a client, or
// both.
type agentHCL struct {
	Name    string // "" keeps Nomad's default, the host name
	DataDir string
	HTTP    int
	RPC     int
	Serf    int

	Server bool
	Client *clientHCL
}

// clientHCL is the client part of an agent.
type clientHCL struct {
	Servers          []string
	MinPort, MaxPort int
	OverrideFile     string
	IMDSEndpoint     string
	DockerVolumes    bool

	// HostVolume is the path of the host volume HostVolumeName, or ""
	// for none.
	HostVolume string

	// PluginDataDir is the plugin's data_dir; render sets it inside the
	// agent's data dir, so that the tests leave nothing outside their
	// folders.
	PluginDataDir string
}

// render returns the agent's HCL config. A client denies the cloud
// fingerprinters, and startProcess points their URLs at a closed loopback
// port as well: without both, Nomad queries the metadata addresses at
// start.
func (c agentHCL) render() string {
	var b strings.Builder
	if c.Name != "" {
		fmt.Fprintf(&b, "name = %q\n", c.Name)
	}
	fmt.Fprintf(&b, `data_dir             = %q
bind_addr            = "127.0.0.1"
plugin_dir           = %q
log_level            = "DEBUG"
disable_update_check = true

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

ports {
  http = %d
  rpc  = %d
  serf = %d
}

consul {
  auto_advertise   = false
  server_auto_join = false
  client_auto_join = false
}
`, c.DataDir, pluginDir(), c.HTTP, c.RPC, c.Serf)

	if c.Server {
		b.WriteString(`
server {
  enabled          = true
  bootstrap_expect = 1
}
`)
	}
	if c.Client != nil {
		client := *c.Client
		client.PluginDataDir = filepath.Join(c.DataDir, "sshrerun")
		b.WriteString(client.render())
	}
	return b.String()
}

func (c clientHCL) render() string {
	servers := make([]string, len(c.Servers))
	for i, server := range c.Servers {
		servers[i] = fmt.Sprintf("%q", server)
	}
	return fmt.Sprintf(`
client {
  enabled           = true
  servers           = [%s]
  network_interface = "lo"
  min_dynamic_port  = %d
  max_dynamic_port  = %d

  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
%s}

plugin "nomad-driver-sshrerun" {
  config {
    data_dir = %q

    advertise {
      override_file    = %q
      imds_endpoint    = %q
      imds_timeout     = "2s"
      refresh_interval = "5s"
    }
  }
}

# the built-in docker driver must not delete the locally built images:
# no registry is reachable to pull them again
plugin "docker" {
  config {
    gc {
      image = false
    }

    volumes {
      enabled = %t
    }
  }
}
`, strings.Join(servers, ", "), c.MinPort, c.MaxPort, c.hostVolume(), c.PluginDataDir, c.OverrideFile, c.IMDSEndpoint, c.DockerVolumes)
}

// hostVolume returns the client's host_volume block, or "" for none.
func (c clientHCL) hostVolume() string {
	if c.HostVolume == "" {
		return ""
	}
	return fmt.Sprintf(`
  host_volume %q {
    path      = %q
    read_only = false
  }
`, HostVolumeName, c.HostVolume)
}

// pluginDir is the agents' plugin_dir: the folder of PluginBinary, which
// contains nothing else.
func pluginDir() string { return filepath.Dir(PluginBinary()) }
