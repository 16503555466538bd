package driver

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// securityTask is a running task with an ssh block, logged in to once.
type securityTask struct {
	port   int
	key    *userKey
	client *ssh.Client
	info   container.InspectResponse
}

// startSecurityTask starts a task whose job runs until it is stopped, with
// an ssh block for root on a free port of 127.0.0.1. It returns after the
// first login, so the SSH server is known to be up.
func startSecurityTask(t *testing.T) *securityTask {
	t.Helper()
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		SSH:     &SSHConfig{Port: "ssh", User: "root", AuthorizedKeys: []string{key.authorizedKey}},
	})
	handle, _ := d.startTask(t, task)

	client := dialSSH(t, port, "root", key)
	t.Cleanup(func() { client.Close() })

	info, err := d.docker.ContainerInspect(context.Background(), taskState(t, handle).ContainerID)
	require.NoError(t, err)
	return &securityTask{port: port, key: key, client: client, info: info}
}

// mountAt returns the container's mount at destination.
func mountAt(t *testing.T, info container.InspectResponse, destination string) container.MountPoint {
	t.Helper()
	for _, m := range info.Mounts {
		if m.Destination == destination {
			return m
		}
	}
	t.Fatalf("the container has no mount at %s; mounts: %+v", destination, info.Mounts)
	return container.MountPoint{}
}

func TestSecurity_SSHPortOnlyOnHostIP(t *testing.T) {
	task := startSecurityTask(t)
	sshPort := spec.PortKey(2222)

	// exactly one binding: the port label's HostIP and host port
	bindings := task.info.HostConfig.PortBindings
	require.Len(t, bindings, 1, "port bindings: %+v", bindings)
	require.Len(t, bindings[sshPort], 1, "port bindings: %+v", bindings)
	assert.Equal(t, "127.0.0.1", bindings[sshPort][0].HostIP)
	assert.Equal(t, strconv.Itoa(task.port), bindings[sshPort][0].HostPort)
	assert.False(t, task.info.HostConfig.PublishAllPorts)

	// the engine publishes nothing else, on any address
	for port, published := range task.info.NetworkSettings.Ports {
		if len(published) == 0 {
			continue
		}
		assert.Equal(t, sshPort, port, "published port %s: %+v", port, published)
		for _, binding := range published {
			assert.Equal(t, "127.0.0.1", binding.HostIP, "published port %s", port)
			assert.Equal(t, strconv.Itoa(task.port), binding.HostPort, "published port %s", port)
		}
	}
}

func TestSecurity_ContainerNotPrivileged(t *testing.T) {
	task := startSecurityTask(t)
	host := task.info.HostConfig

	assert.False(t, host.Privileged)
	assert.Empty(t, host.CapAdd)
	assert.Empty(t, host.Devices)
	assert.NotEqual(t, "host", string(host.NetworkMode))
	assert.NotEqual(t, "host", string(host.PidMode))
	assert.NotEqual(t, "host", string(host.IpcMode))

	// The session's effective capabilities lack the ones that a
	// privileged container or --cap-add would give. Bit numbers are from
	// linux/capability.h.
	out, status := runSSH(t, task.client, "cat /proc/self/status")
	require.Equal(t, 0, status)
	effective := capabilitySet(t, out, "CapEff")
	for name, bit := range map[string]uint{
		"CAP_DAC_READ_SEARCH": 2,
		"CAP_NET_ADMIN":       12,
		"CAP_SYS_MODULE":      16,
		"CAP_SYS_RAWIO":       17,
		"CAP_SYS_PTRACE":      19,
		"CAP_SYS_ADMIN":       21,
	} {
		assert.Zero(t, effective&(1<<bit), "the session has %s (CapEff %#x)", name, effective)
	}
}

// capabilitySet parses the hexadecimal capability set named field from
// the text of /proc/<pid>/status.
func capabilitySet(t *testing.T, status, field string) uint64 {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		value, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		set, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		require.NoError(t, err, "line %q", line)
		return set
	}
	t.Fatalf("/proc/self/status has no %s line:\n%s", field, status)
	return 0
}

func TestSecurity_NoDockerSocketInContainer(t *testing.T) {
	task := startSecurityTask(t)

	for _, path := range []string{"/var/run/docker.sock", "/run/docker.sock"} {
		_, status := runSSH(t, task.client, "test -e "+path)
		assert.NotEqual(t, 0, status, "%s exists in the container", path)
	}

	for _, m := range task.info.Mounts {
		assert.NotContains(t, []string{"/var/run/docker.sock", "/run/docker.sock"}, m.Source, "mount %+v", m)
		assert.False(t, strings.HasSuffix(m.Source, "docker.sock"), "mount %+v", m)
	}
}

func TestSecurity_InitFilesReadOnly(t *testing.T) {
	task := startSecurityTask(t)

	for _, path := range []string{spec.InitBinaryPath, spec.InitConfigPath} {
		assert.False(t, mountAt(t, task.info, path).RW, "%s is mounted read-write", path)

		_, status := runSSH(t, task.client, fmt.Sprintf("echo x >> %s", path))
		assert.NotEqual(t, 0, status, "appending to %s succeeded", path)

		// Opening the running binary for writing fails with "Text file
		// busy" even on a writable mount, so touch shows that the mount
		// is what stops changes.
		out, status := runSSH(t, task.client, fmt.Sprintf("touch %s 2>&1", path))
		assert.NotEqual(t, 0, status, "touching %s succeeded", path)
		assert.Contains(t, out, "Read-only file system", "touching %s", path)

		// Without CAP_SYS_ADMIN, root in the container cannot remount it.
		out, status = runSSH(t, task.client, fmt.Sprintf("mount -o remount,rw,bind %s 2>&1", path))
		assert.NotEqual(t, 0, status, "remounting %s read-write succeeded: %s", path, out)
	}
}

func TestSecurity_LoginsRejected(t *testing.T) {
	task := startSecurityTask(t)
	addr := fmt.Sprintf("127.0.0.1:%d", task.port)

	requireRejected := func(t *testing.T, config *ssh.ClientConfig) {
		t.Helper()
		config.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		config.Timeout = 5 * time.Second
		client, err := ssh.Dial("tcp", addr, config)
		if err == nil {
			client.Close()
			t.Fatalf("the login as %q succeeded", config.User)
		}
		assert.Contains(t, err.Error(), "unable to authenticate")
	}

	t.Run("unknown key", func(t *testing.T) {
		requireRejected(t, sshClientConfig("root", newUserKey(t)))
	})

	t.Run("wrong user name", func(t *testing.T) {
		requireRejected(t, sshClientConfig("admin", task.key))
	})

	// The server offers only public keys, so the client never sends a
	// password or receives a challenge.
	t.Run("password", func(t *testing.T) {
		passwordRequested := false
		requireRejected(t, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{
			ssh.PasswordCallback(func() (string, error) {
				passwordRequested = true
				return "root", nil
			}),
		}})
		assert.False(t, passwordRequested, "the server offered password authentication")
	})

	t.Run("keyboard-interactive", func(t *testing.T) {
		challenged := false
		requireRejected(t, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				challenged = true
				return make([]string, len(questions)), nil
			}),
		}})
		assert.False(t, challenged, "the server sent a keyboard-interactive challenge")
	})

	// the authorized key and user still log in after the rejected attempts
	c := dialSSH(t, task.port, "root", task.key)
	c.Close()
}
