package driver

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	units "github.com/docker/go-units"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// testAuthorizedKey is a valid authorized_keys line, generated per run.
var testAuthorizedKey = func() string {
	public, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	key, err := ssh.NewPublicKey(public)
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + " user@example"
}()

func TestValidatePluginConfig_Defaults(t *testing.T) {
	s, err := validatePluginConfig(&PluginConfig{Advertise: &AdvertiseConfig{LocalIPv4Fallback: true}})
	require.NoError(t, err)
	require.Equal(t, DefaultDockerEndpoint, s.dockerEndpoint)
	require.Equal(t, DefaultDataDir, s.dataDir)
	require.Equal(t, "/etc/circleci/public-ipv4", s.advertise.OverrideFile)
	require.Equal(t, "", s.advertise.IMDSEndpoint)
	require.Equal(t, 5*time.Second, s.advertise.IMDSTimeout)
	require.True(t, s.advertise.LocalIPv4Fallback)
	require.Equal(t, 30*time.Second, s.refreshInterval)
}

func TestValidatePluginConfig_Invalid(t *testing.T) {
	cases := []struct {
		name    string
		config  PluginConfig
		errText string
	}{
		{"endpoint scheme", PluginConfig{DockerEndpoint: "ftp://docker"}, `docker_endpoint = "ftp://docker" has the scheme "ftp"`},
		{"endpoint with TLS", PluginConfig{DockerEndpoint: "https://127.0.0.1:2376"}, `has the scheme "https"; use unix://, or tcp:// or http:// for an engine on this host`},
		{"endpoint without socket", PluginConfig{DockerEndpoint: "unix://"}, `docker_endpoint = "unix://" has no socket path`},
		{"endpoint without host", PluginConfig{DockerEndpoint: "tcp://"}, `docker_endpoint = "tcp://" has no host`},
		{"timeout not a duration", PluginConfig{Advertise: &AdvertiseConfig{IMDSTimeout: "5"}}, `advertise.imds_timeout = "5" is not a duration`},
		{"timeout negative", PluginConfig{Advertise: &AdvertiseConfig{IMDSTimeout: "-1s"}}, `advertise.imds_timeout = "-1s" must be greater than zero`},
		{"refresh too short", PluginConfig{Advertise: &AdvertiseConfig{RefreshInterval: "100ms"}}, `advertise.refresh_interval = "100ms" is shorter than 1s`},
		{"bad family", PluginConfig{Advertise: &AdvertiseConfig{Family: "ip4"}}, `advertise.family = "ip4" is not an address family; use "ipv4" or "ipv6"`},
		{"data_dir relative", PluginConfig{DataDir: "var/lib/sshrerun"}, `data_dir = "var/lib/sshrerun" is not an absolute path`},
		{"override relative", PluginConfig{Advertise: &AdvertiseConfig{OverrideFile: "public-ipv4"}}, `advertise.override_file = "public-ipv4" is not an absolute path`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := validatePluginConfig(&tc.config)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.errText)
		})
	}
}

func TestValidateTaskConfig_Invalid(t *testing.T) {
	goodSSH := func() *SSHConfig {
		return &SSHConfig{Port: "ssh", User: "root", AuthorizedKeys: []string{testAuthorizedKey}}
	}
	cases := []struct {
		name    string
		config  TaskConfig
		errText string
	}{
		{"missing image", TaskConfig{}, "task config image is missing"},
		{"image with spaces", TaskConfig{Image: " busybox"}, `image = " busybox" has leading or trailing spaces`},
		{"relative work_dir", TaskConfig{Image: "x", WorkDir: "project"}, `work_dir = "project" is not an absolute path; give the full path inside the container`},
		{"work_dir in the init's directory", TaskConfig{Image: "x", WorkDir: "/.sshrerun/events/x"}, `task config work_dir = "/.sshrerun/events/x" is inside /.sshrerun, which contains the driver's init`},
		{"work_dir with NUL", TaskConfig{Image: "x", WorkDir: "/a\x00b"}, `work_dir = "/a\x00b" contains a NUL character`},
		{"shm_size without a number", TaskConfig{Image: "x", ShmSize: "big"}, `task config shm_size = "big" is not a size; use a number with a unit, for example "1g" or "512m"`},
		{"negative shm_size", TaskConfig{Image: "x", ShmSize: "-1m"}, `task config shm_size = "-1m" is not a size`},
		{"zero shm_size", TaskConfig{Image: "x", ShmSize: "0"}, `task config shm_size = "0" is 0 bytes, less than 1 MiB; add a unit, for example "512m"`},
		{"shm_size without a unit", TaskConfig{Image: "x", ShmSize: "512"}, `task config shm_size = "512" is 512 bytes, less than 1 MiB`},
		{"huge shm_size", TaskConfig{Image: "x", ShmSize: "100000000000g"}, `task config shm_size = "100000000000g" is too large; use a size such as "1g"`},
		{"unknown cap_add", TaskConfig{Image: "x", CapAdd: []string{"PTRACE"}}, `task config cap_add has "PTRACE", which is not a Linux capability`},
		{"unknown cap_drop", TaskConfig{Image: "x", CapDrop: []string{""}}, `task config cap_drop has "", which is not a Linux capability`},
		{"unknown ulimit", TaskConfig{Image: "x", Ulimit: map[string]string{"files": "1024"}}, `task config ulimit files = "1024" is invalid: invalid ulimit type: files; use a limit such as nofile, nproc or memlock`},
		{"ulimit not a number", TaskConfig{Image: "x", Ulimit: map[string]string{"nofile": "many"}}, `task config ulimit nofile = "many" is invalid`},
		{"negative ulimit", TaskConfig{Image: "x", Ulimit: map[string]string{"nofile": "-2:-1"}}, `task config ulimit nofile = "-2:-1" is invalid: a limit is a number of zero or more, or -1 for unlimited`},
		{"ulimit soft over hard", TaskConfig{Image: "x", Ulimit: map[string]string{"nofile": "2048:1024"}}, `task config ulimit nofile = "2048:1024" is invalid: ulimit soft limit must be less than or equal to hard limit: 2048 > 1024`},
		{"env name with equals", TaskConfig{Image: "x", Env: map[string]string{"A=B": "c"}}, `env has the invalid name "A=B"`},
		{"missing port", TaskConfig{Image: "x", SSH: &SSHConfig{AuthorizedKeys: []string{testAuthorizedKey}}}, "ssh.port is missing"},
		{"bad user", TaskConfig{Image: "x", SSH: &SSHConfig{Port: "ssh", User: "bad user", AuthorizedKeys: []string{testAuthorizedKey}}}, `ssh.user = "bad user" is not a valid login name`},
		{"no keys", TaskConfig{Image: "x", SSH: &SSHConfig{Port: "ssh"}}, "ssh.authorized_keys is empty"},
		{"bad wait", TaskConfig{Image: "x", SSH: &SSHConfig{Port: "ssh", WaitForConnection: "10", AuthorizedKeys: []string{testAuthorizedKey}}}, `ssh.wait_for_connection = "10" is not a duration`},
		{"negative max session", TaskConfig{Image: "x", SSH: &SSHConfig{Port: "ssh", MaxSession: "-1h", AuthorizedKeys: []string{testAuthorizedKey}}}, `ssh.max_session = "-1h" is not a duration of zero or more`},
		{"zero max session", TaskConfig{Image: "x", SSH: &SSHConfig{Port: "ssh", MaxSession: "0s", AuthorizedKeys: []string{testAuthorizedKey}}}, `ssh.max_session = "0s" would close every session at once`},
		{"empty key", TaskConfig{Image: "x", SSH: &SSHConfig{Port: "ssh", AuthorizedKeys: []string{testAuthorizedKey, ""}}}, "authorized_keys[1] \"\": entry is empty"},
		{"garbage key", TaskConfig{Image: "x", SSH: &SSHConfig{Port: "ssh", AuthorizedKeys: []string{"ssh-ed25519 not-base64"}}}, "authorized_keys[0] \"ssh-ed25519 not-base64\": invalid public key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validateTaskConfig(&tc.config)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.errText)
		})
	}

	ok := TaskConfig{Image: "busybox", SSH: goodSSH()}
	require.NoError(t, validateTaskConfig(&ok))
}

func TestValidateTaskConfig_CleansWorkDir(t *testing.T) {
	cfg := TaskConfig{Image: "busybox", WorkDir: "/home//builder/project/"}
	require.NoError(t, validateTaskConfig(&cfg))
	require.Equal(t, "/home/builder/project", cfg.WorkDir)
}

func TestTaskUlimits(t *testing.T) {
	ulimits, err := taskUlimits(map[string]string{"nproc": "512", "nofile": "4096:8192", "memlock": "-1"})
	require.NoError(t, err)
	require.Equal(t, []*units.Ulimit{{Name: "memlock", Soft: -1, Hard: -1}, {Name: "nofile", Soft: 4096, Hard: 8192}, {Name: "nproc", Soft: 512, Hard: 512}}, ulimits)
}

func TestShmSizeBytes(t *testing.T) {
	for value, want := range map[string]int64{"": 0, "512m": 512 << 20, "1g": 1 << 30, "1GiB": 1 << 30, "1048576": 1 << 20} {
		got, err := shmSizeBytes(value)
		require.NoError(t, err, value)
		require.Equal(t, want, got, value)
	}
}

func TestValidateTaskConfig_DefaultUser(t *testing.T) {
	cfg := TaskConfig{Image: "busybox", SSH: &SSHConfig{Port: "ssh", AuthorizedKeys: []string{testAuthorizedKey}}}
	require.NoError(t, validateTaskConfig(&cfg))
	require.Equal(t, "root", cfg.SSH.User)
}

func TestSSHPort_UnknownLabel(t *testing.T) {
	cfg := &drivers.TaskConfig{Resources: &drivers.Resources{Ports: &structs.AllocatedPorts{{Label: "http", Value: 8080}}}}
	_, err := sshPort(cfg, "ssh")
	require.Error(t, err)
	require.Contains(t, err.Error(), `ssh.port = "ssh" is not a port label of this task (labels: [http])`)
	require.Contains(t, err.Error(), "declare it in the group's network block")
}

func TestContainerPort(t *testing.T) {
	require.Equal(t, 2222, containerPort(structs.AllocatedPortMapping{Value: 64535}))
	require.Equal(t, 22, containerPort(structs.AllocatedPortMapping{Value: 64535, To: 22}))
	require.Equal(t, 64535, containerPort(structs.AllocatedPortMapping{Value: 64535, To: -1}))
}

func TestSSHCommand(t *testing.T) {
	cmd := SSHCommand(&SSHState{Host: "203.0.113.10", Port: 64535, User: "root"})
	require.Equal(t, "ssh -p 64535 root@203.0.113.10", cmd)
	require.False(t, strings.Contains(cmd, "  "))
}

func TestIsRootUser(t *testing.T) {
	for _, user := range []string{"", "root", "0", "0:0", "root:root"} {
		require.True(t, isRootUser(user), user)
	}
	for _, user := range []string{"1000", "1000:1000", "circleci", "0:1000", "root:ci"} {
		require.False(t, isRootUser(user), user)
	}
}

func TestValidateContainerUser(t *testing.T) {
	for _, user := range []string{"", "root", "1000", "1000:2000", "circleci", "circleci:ci", "1000:staff"} {
		require.NoError(t, validateContainerUser(user), user)
	}
	for _, user := range []string{"bad user", "-x", "a:b:c", ":1000", strings.Repeat("u", 33)} {
		require.ErrorContains(t, validateContainerUser(user), fmt.Sprintf("the container user %q is invalid", user))
	}
}
