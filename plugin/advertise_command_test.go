package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeClientConfig writes a Nomad client config whose plugin block points
// at overrideFile and endpoint, with a data_dir of the test's own.
func writeClientConfig(t *testing.T, overrideFile, endpoint string) string {
	t.Helper()
	return writeClientConfigWithDataDir(t, overrideFile, endpoint, t.TempDir())
}

func writeClientConfigWithDataDir(t *testing.T, overrideFile, endpoint, dataDir string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client.hcl")
	config := fmt.Sprintf(`
client {
  enabled = true
}

plugin "nomad-driver-sshrerun" {
  config {
    data_dir = %q

    advertise {
      override_file = %q
      imds_endpoint = %q
      imds_timeout  = "1s"
    }
  }
}
`, dataDir, overrideFile, endpoint)
	require.NoError(t, os.WriteFile(path, []byte(config), 0o644))
	return path
}

func newIMDS(t *testing.T, publicIPv4 string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/latest/api/token":
			_, _ = w.Write([]byte("token"))
		case "/latest/meta-data/public-ipv4":
			_, _ = w.Write([]byte(publicIPv4))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAdvertise_MetadataAddress(t *testing.T) {
	srv := newIMDS(t, "198.51.100.7")
	config := writeClientConfig(t, filepath.Join(t.TempDir(), "absent"), srv.URL)

	var stdout, stderr bytes.Buffer
	code := runAdvertise([]string{"-config", config}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	out := stdout.String()
	require.Contains(t, out, "override-file")
	require.Contains(t, out, "not found")
	require.Contains(t, out, `"198.51.100.7"`)
	require.Contains(t, out, "ssh commands will use 198.51.100.7, from imds-public")
}

func TestAdvertise_InvalidOverrideFails(t *testing.T) {
	srv := newIMDS(t, "198.51.100.7")
	override := filepath.Join(t.TempDir(), "public-ipv4")
	require.NoError(t, os.WriteFile(override, []byte("<html>404 - Not Found</html>"), 0o644))
	config := writeClientConfig(t, override, srv.URL)

	var stdout, stderr bytes.Buffer
	code := runAdvertise([]string{"-config", config}, &stdout, &stderr)
	require.Equal(t, 1, code)
	require.Contains(t, stdout.String(), "rejected")
	require.Contains(t, stdout.String(), "no address resolved")
	require.False(t, strings.Contains(stdout.String(), "ssh commands will use"))
}

// The data_dir checks of the plugin's start run here too, so that a config
// can be checked before the agent restarts.
func TestAdvertise_SharedDataDirFails(t *testing.T) {
	srv := newIMDS(t, "198.51.100.7")
	shared := t.TempDir()
	require.NoError(t, os.Chmod(shared, 0o777))
	config := writeClientConfigWithDataDir(t, filepath.Join(t.TempDir(), "absent"), srv.URL, shared)

	var stdout, stderr bytes.Buffer
	code := runAdvertise([]string{"-config", config}, &stdout, &stderr)
	require.Equal(t, 1, code)
	require.Contains(t, stderr.String(), "plugin config data_dir: "+shared+" has mode")
	require.Contains(t, stderr.String(), "run chmod go-w "+shared)
}

func TestAdvertise_Usage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, runAdvertise(nil, &stdout, &stderr))
	require.Contains(t, stderr.String(), "error: -config is missing")
	require.Contains(t, stderr.String(), "Usage: nomad-driver-sshrerun advertise -config FILE")

	stderr.Reset()
	require.Equal(t, 0, runAdvertise([]string{"-h"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "Usage: nomad-driver-sshrerun advertise -config FILE")

	stderr.Reset()
	require.Equal(t, 1, runAdvertise([]string{"-config", filepath.Join(t.TempDir(), "absent.hcl")}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "failed to read the client config")
}
