package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPluginConfigFromFile_BlockWithDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.hcl")
	require.NoError(t, os.WriteFile(path, []byte(`
data_dir = "/opt/nomad/data"

client {
  enabled = true
}

plugin "docker" {
  config {
    gc {
      image = false
    }
  }
}

plugin "nomad-driver-sshrerun" {
  config {
    auth_config = "/etc/nomad-driver-sshrerun/docker-config.json"

    advertise {
      override_file       = "/run/public-ipv4"
      imds_endpoint       = "http://127.0.0.1:1338"
      local_ipv4_fallback = false
    }
  }
}
`), 0o644))

	cfg, err := PluginConfigFromFile(path)
	require.NoError(t, err)
	require.Equal(t, DefaultDockerEndpoint, cfg.DockerEndpoint)
	require.Equal(t, "/etc/nomad-driver-sshrerun/docker-config.json", cfg.AuthConfig)
	require.Equal(t, DefaultAllowCaps, cfg.AllowCaps, "the schema's default of allow_caps")
	require.Equal(t, "/run/public-ipv4", cfg.Advertise.OverrideFile)
	require.Equal(t, "http://127.0.0.1:1338", cfg.Advertise.IMDSEndpoint)
	require.False(t, cfg.Advertise.LocalIPv4Fallback)
	require.Equal(t, "5s", cfg.Advertise.IMDSTimeout)
	require.Equal(t, "30s", cfg.Advertise.RefreshInterval)
}

func TestPluginConfigFromFile_NoBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.hcl")
	require.NoError(t, os.WriteFile(path, []byte("client {\n  enabled = true\n}\n"), 0o644))

	cfg, err := PluginConfigFromFile(path)
	require.NoError(t, err)
	s, err := validatePluginConfig(cfg)
	require.NoError(t, err)
	require.Equal(t, "/etc/circleci/public-ipv4", s.advertise.OverrideFile)
	require.True(t, s.advertise.LocalIPv4Fallback)
}

func TestPluginConfigFromFile_Errors(t *testing.T) {
	dir := t.TempDir()
	_, err := PluginConfigFromFile(filepath.Join(dir, "absent.hcl"))
	require.ErrorContains(t, err, "failed to read the client config")

	bad := filepath.Join(dir, "bad.hcl")
	require.NoError(t, os.WriteFile(bad, []byte("plugin \"x\" {"), 0o644))
	_, err = PluginConfigFromFile(bad)
	require.ErrorContains(t, err, "failed to parse the client config "+bad)

	unknown := filepath.Join(dir, "unknown.hcl")
	require.NoError(t, os.WriteFile(unknown, []byte(`plugin "nomad-driver-sshrerun" {
  config {
    advertize {}
  }
}`), 0o644))
	_, err = PluginConfigFromFile(unknown)
	require.ErrorContains(t, err, "invalid plugin config")
}
