package driver

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/registry"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/helper/testlog"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/stretchr/testify/require"
)

// writeAuthConfig writes content to a config.json in a new folder and
// returns its path.
func writeAuthConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func TestPluginAuth_Lookup(t *testing.T) {
	path := writeAuthConfig(t, fmt.Sprintf(`{
  "auths": {
    "https://index.docker.io/v1/": {"auth": %q},
    "docker.io": {},
    "registry.example.com:5000": {"username": "ci", "password": "token"},
    "https://registry.example.com:5000/v2/": {"username": "other", "password": "other"},
    "http://mirror.example.com/v2/": {"auth": %q},
    "tokens.example.com": {"registrytoken": "bearer"},
    "ecr.example.com": {"username": "stale", "password": "stale"},
    "store.example.com": {}
  },
  "credsStore": "desktop",
  "credHelpers": {"ecr.example.com": "ecr-login"}
}`, basicAuth("hub", "hubpass"), basicAuth("mirror", "a:b")))
	logger := hclog.NewNullLogger()

	cases := map[string]*registry.AuthConfig{
		// the entry with credentials wins over the empty "docker.io" one
		"busybox:1.36":                         {Username: "hub", Password: "hubpass", ServerAddress: "https://index.docker.io/v1/"},
		"docker.io/library/busybox":            {Username: "hub", Password: "hubpass", ServerAddress: "https://index.docker.io/v1/"},
		"registry-1.docker.io/library/busybox": {Username: "hub", Password: "hubpass", ServerAddress: "https://index.docker.io/v1/"},
		// the bare host wins over another form of it, and hosts ignore case
		"registry.example.com:5000/ci/image:1": {Username: "ci", Password: "token", ServerAddress: "registry.example.com:5000"},
		"Registry.Example.com:5000/ci/image":   {Username: "ci", Password: "token", ServerAddress: "registry.example.com:5000"},
		"mirror.example.com/ci/image":          {Username: "mirror", Password: "a:b", ServerAddress: "http://mirror.example.com/v2/"},
		"tokens.example.com/ci/image":          {RegistryToken: "bearer", ServerAddress: "tokens.example.com"},
		// no entry: an anonymous pull, even with a default credential helper
		"registry.example.com/ci/image":                                nil,
		"other.example.com/ci/image@sha256:" + strings.Repeat("a", 64): nil,
	}
	for image, want := range cases {
		for range 20 {
			got, err := pluginAuth(path, image, logger)
			require.NoError(t, err, image)
			require.Equal(t, want, got, image)
		}
	}

	// a helper named for the registry wins over an entry in auths, as in
	// the Docker CLI
	for image, helper := range map[string]string{"ecr.example.com/ci/image": "ecr-login", "store.example.com/ci/image": "desktop"} {
		_, err := pluginAuth(path, image, logger)
		host, _, _ := strings.Cut(image, "/")
		require.EqualError(t, err, fmt.Sprintf(`plugin config auth_config: %s keeps the credentials of %s in the credential helper %q, which the driver does not run; write them into auths, for example with docker login and a config without credsStore and credHelpers`, path, host, helper))
	}

	// unset, or a file that is not there yet: an anonymous pull
	got, err := pluginAuth("", "busybox", logger)
	require.NoError(t, err)
	require.Nil(t, got)
	got, err = pluginAuth(filepath.Join(t.TempDir(), "missing.json"), "busybox", logger)
	require.NoError(t, err)
	require.Nil(t, got)
}

// The task's auth block wins over the plugin's auth_config.
func TestPullAuth_TaskBlockWins(t *testing.T) {
	path := writeAuthConfig(t, fmt.Sprintf(`{"auths": {"registry.example.com": {"auth": %q}}}`, basicAuth("file", "filepass")))
	logger := hclog.NewNullLogger()

	got, err := pullAuth(&TaskConfig{Image: "registry.example.com/ci/image", Auth: &AuthConfig{Username: "task", Password: "taskpass"}}, path, logger)
	require.NoError(t, err)
	require.Equal(t, &registry.AuthConfig{Username: "task", Password: "taskpass"}, got)

	got, err = pullAuth(&TaskConfig{Image: "registry.example.com/ci/image"}, path, logger)
	require.NoError(t, err)
	require.Equal(t, &registry.AuthConfig{Username: "file", Password: "filepass", ServerAddress: "registry.example.com"}, got)
}

func TestPluginAuth_InvalidFiles(t *testing.T) {
	cases := map[string]string{
		`{"auths": `: `is not a Docker config.json: unexpected end of JSON input; write it as docker login does, with an "auths" object`,
		`{"auths": {"r.example.com": {"auth": "%%%"}}}`:                                                                 `auths["r.example.com"]: auth is not base64`,
		fmt.Sprintf(`{"auths": {"r.example.com": {"auth": %q}}}`, base64.StdEncoding.EncodeToString([]byte("nocolon"))): `auths["r.example.com"]: auth does not decode to "user:password"`,
		`{"auths": {"r.example.com": {"username": "ci"}}}`:                                                              `auths["r.example.com"]: the entry has only one of username and password; give both`,
	}
	for content, want := range cases {
		path := writeAuthConfig(t, content)
		_, err := pluginAuth(path, "r.example.com/ci/image", hclog.NewNullLogger())
		require.ErrorContains(t, err, "plugin config auth_config: "+path, content)
		require.ErrorContains(t, err, want, content)
	}

	dir := t.TempDir()
	_, err := pluginAuth(dir, "busybox", hclog.NewNullLogger())
	require.ErrorContains(t, err, "plugin config auth_config: failed to read "+dir)
	require.ErrorContains(t, err, "give the path of a Docker config.json file")

	_, err = pluginAuth(writeAuthConfig(t, "{}"), "Busybox", hclog.NewNullLogger())
	require.ErrorContains(t, err, `image "Busybox" is not a valid reference`)
}

func TestPluginConfig_AuthConfig(t *testing.T) {
	_, err := validatePluginConfig(&PluginConfig{AuthConfig: "docker/config.json"})
	require.EqualError(t, err, `plugin config auth_config = "docker/config.json" is not an absolute path; give the full path of a Docker config.json, for example "/etc/nomad-driver-sshrerun/docker-config.json"`)

	// a file that exists must parse when the plugin starts
	path := writeAuthConfig(t, "not json")
	d := NewPlugin(testlog.HCLogger(t))
	t.Cleanup(d.Shutdown)
	var encoded []byte
	require.NoError(t, base.MsgPackEncode(&encoded, &PluginConfig{DataDir: t.TempDir(), AuthConfig: path}))
	err = d.SetConfig(&base.Config{PluginConfig: encoded})
	require.ErrorContains(t, err, "plugin config auth_config: "+path+" is not a Docker config.json")
}

// A task without an auth block pulls from a registry that needs a login
// with the credentials of the plugin's auth_config, and wrong ones there
// fail the pull with a message that names the option.
func TestImage_PullWithAuthConfig(t *testing.T) {
	authConfig := filepath.Join(t.TempDir(), "config.json")
	config := defaultTestPluginConfig(t)
	config["auth_config"] = authConfig
	d := newTestDriver(t, config)
	reg, ref := newRegistry(t, d)

	require.NoError(t, os.WriteFile(authConfig, []byte(fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`,
		"http://"+reg.Address, basicAuth(reg.Username, "wrong"))), 0o600))
	task := newTask(t, freeSSHPort(t), &TaskConfig{Image: ref, Command: "/bin/true"})
	d.mkAllocDir(t, task, false)
	_, _, err := d.StartTask(task)
	require.ErrorContains(t, err, "unauthorized")
	require.ErrorContains(t, err, "the task's auth block or the plugin's auth_config")

	// the file is read again at each pull
	require.NoError(t, os.WriteFile(authConfig, []byte(fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`,
		reg.Address, basicAuth(reg.Username, reg.Password))), 0o600))
	task = newTask(t, freeSSHPort(t), &TaskConfig{Image: ref, Command: "/bin/true"})
	d.startTask(t, task)
	require.Equal(t, 0, d.waitExit(t, task.ID, 30*time.Second).ExitCode)
}
