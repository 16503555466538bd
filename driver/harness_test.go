package driver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/helper/pluginutils/loader"
	"github.com/hashicorp/nomad/helper/testlog"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	dtestutil "github.com/hashicorp/nomad/plugins/drivers/testutils"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// testDriver is a driver behind Nomad's DriverHarness, configured through
// Nomad's plugin loader so that the plugin block goes through the same
// HCL spec and defaults as on a real client.
type testDriver struct {
	*dtestutil.DriverHarness
	impl   *Driver
	docker *client.Client
}

// newTestDriver returns a configured driver. pluginConfig is the plugin
// block as the loader takes it; nil means an advertise block with an
// override file that holds 127.0.0.1.
func newTestDriver(t *testing.T, pluginConfig map[string]interface{}) *testDriver {
	t.Helper()
	return newTestDriverWith(t, pluginConfig, nil)
}

// newTestDriverWith is newTestDriver with configure applied to the driver
// before SetConfig, for fields that have no plugin config option.
func newTestDriverWith(t *testing.T, pluginConfig map[string]interface{}, configure func(*Driver)) *testDriver {
	t.Helper()
	if pluginConfig == nil {
		pluginConfig = defaultTestPluginConfig(t)
	}
	// the plugin's files go to the test's own directory
	if _, ok := pluginConfig["data_dir"]; !ok {
		pluginConfig["data_dir"] = t.TempDir()
	}

	logger := testlog.HCLogger(t)
	impl := NewPlugin(logger)
	impl.initBinary = testInitBinary
	if configure != nil {
		configure(impl)
	}
	harness := dtestutil.NewDriverHarness(t, impl)
	t.Cleanup(func() {
		impl.Shutdown()
		harness.Kill()
	})

	pluginLoader, err := loader.NewPluginLoader(&loader.PluginLoaderConfig{
		Logger:            logger,
		PluginDir:         t.TempDir(),
		SupportedVersions: loader.AgentSupportedApiVersions,
		InternalPlugins: map[loader.PluginID]*loader.InternalPluginConfig{
			{Name: DriverName, PluginType: base.PluginTypeDriver}: {
				Config:  pluginConfig,
				Factory: func(context.Context, hclog.Logger) interface{} { return harness },
			},
		},
	})
	require.NoError(t, err)
	instance, err := pluginLoader.Dispense(DriverName, base.PluginTypeDriver, nil, logger)
	require.NoError(t, err)
	dispensed, ok := instance.Plugin().(*dtestutil.DriverHarness)
	require.True(t, ok, "the loader returned %T", instance.Plugin())

	return &testDriver{DriverHarness: dispensed, impl: impl, docker: testDockerClient(t)}
}

// testDockerClient returns a client of the machine's Docker engine, which
// the test closes at its end.
func testDockerClient(t *testing.T) *client.Client {
	t.Helper()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	t.Cleanup(func() { docker.Close() })
	return docker
}

// defaultTestPluginConfig returns an advertise block with an override file
// that holds 127.0.0.1.
func defaultTestPluginConfig(t *testing.T) map[string]interface{} {
	t.Helper()
	override := filepath.Join(t.TempDir(), "public-ipv4")
	require.NoError(t, os.WriteFile(override, []byte("127.0.0.1\n"), 0o644))
	return map[string]interface{}{
		"advertise": map[string]interface{}{
			"override_file": override,
			// never used while the override file exists
			"imds_endpoint": "http://127.0.0.1:9",
		},
	}
}

// userKey is a generated SSH user key.
type userKey struct {
	signer        ssh.Signer
	authorizedKey string
}

func newUserKey(t testing.TB) *userKey {
	t.Helper()
	_, private, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(private)
	require.NoError(t, err)
	return &userKey{signer: signer, authorizedKey: string(ssh.MarshalAuthorizedKey(signer.PublicKey()))}
}

// handedOutPorts are the ports that freeSSHPort returned, so that tasks
// started together never get the same one.
var handedOutPorts = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freeSSHPort returns a port in the reference range 64535-65535 that is
// free on 127.0.0.1 and was not returned before.
func freeSSHPort(t testing.TB) int {
	t.Helper()
	handedOutPorts.Lock()
	defer handedOutPorts.Unlock()
	start := int(time.Now().UnixNano() % 1001)
	for i := 0; i <= 1000; i++ {
		port := 64535 + (start+i)%1001
		if handedOutPorts.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			handedOutPorts.ports[port] = true
			return port
		}
	}
	t.Fatal("no free port in 64535-65535")
	return 0
}

// newTask returns a task config for the test image with an ssh block on the
// port label "ssh", which is bound to 127.0.0.1:port.
func newTask(t testing.TB, port int, taskConfig *TaskConfig) *drivers.TaskConfig {
	t.Helper()
	task := &drivers.TaskConfig{
		ID:      uuid.Generate(),
		AllocID: uuid.Generate(),
		Name:    "build",
		JobName: "ci-build",
		JobID:   "ci-build",
		Resources: &drivers.Resources{
			NomadResources: &structs.AllocatedTaskResources{
				Memory: structs.AllocatedMemoryResources{MemoryMB: 64},
				Cpu:    structs.AllocatedCpuResources{CpuShares: 100},
			},
			Ports: &structs.AllocatedPorts{{Label: "ssh", Value: port, HostIP: "127.0.0.1"}},
		},
	}
	require.NoError(t, task.EncodeConcreteDriverConfig(taskConfig))
	testAllocIDs.add(task.AllocID)
	return task
}

// newSleepingSSHTask returns a task of the test image that runs until it
// is stopped, with an ssh block for key on port.
func newSleepingSSHTask(t testing.TB, port int, key *userKey) *drivers.TaskConfig {
	t.Helper()
	return newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
}

// taskState returns the driver state of a started task.
func taskState(t testing.TB, handle *drivers.TaskHandle) TaskState {
	t.Helper()
	var state TaskState
	require.NoError(t, handle.GetDriverState(&state))
	return state
}

// mkAllocDir builds the task's alloc directory with Nomad's harness and
// removes it when the test ends, including the temporary directory around
// it, which the harness leaves behind.
func (d *testDriver) mkAllocDir(t testing.TB, task *drivers.TaskConfig, logs bool) {
	t.Helper()
	cleanup := d.MkAllocDir(task, logs)
	parent := filepath.Dir(task.AllocDir)
	t.Cleanup(func() { _ = os.Remove(parent) })
	t.Cleanup(cleanup)
}

// startTask starts task and registers its cleanup: destroy with force,
// then remove any container of the alloc that is still there.
func (d *testDriver) startTask(t testing.TB, task *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork) {
	t.Helper()
	d.mkAllocDir(t, task, false)

	handle, network, err := d.StartTask(task)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = d.DestroyTask(task.ID, true)
		d.removeAllocContainers(t, task.AllocID)
	})
	require.NoError(t, d.WaitUntilStarted(task.ID, 30*time.Second))
	return handle, network
}

func (d *testDriver) removeAllocContainers(t testing.TB, allocID string) {
	ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+allocID)
	if err != nil {
		t.Errorf("listing containers: %v", err)
		return
	}
	for _, id := range ids {
		t.Errorf("container %s of alloc %s was left; removing it", id, allocID)
		_ = d.docker.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true})
	}
}

// sshClientConfig returns a client config that logs in as user with key
// and accepts any host key.
func sshClientConfig(user string, key *userKey) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         5 * time.Second,
	}
}

// dialSSH connects to 127.0.0.1:port as user, polling until the server in
// the container accepts or the deadline passes.
func dialSSH(t testing.TB, port int, user string, key *userKey) *ssh.Client {
	t.Helper()
	return dialSSHWithConfig(t, port, sshClientConfig(user, key))
}

func dialSSHWithConfig(t testing.TB, port int, config *ssh.ClientConfig) *ssh.Client {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := ssh.Dial("tcp", addr, config)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh to %s failed: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runSSH runs command in a new session and returns stdout and the exit
// status.
func runSSH(t testing.TB, c *ssh.Client, command string) (string, int) {
	t.Helper()
	session, err := c.NewSession()
	require.NoError(t, err)
	defer session.Close()
	out, err := session.Output(command)
	if err == nil {
		return string(out), 0
	}
	exitErr, ok := err.(*ssh.ExitError)
	require.True(t, ok, "ssh session failed: %v", err)
	return string(out), exitErr.ExitStatus()
}

// waitExit waits for the task's exit result.
func (d *testDriver) waitExit(t testing.TB, taskID string, timeout time.Duration) *drivers.ExitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, err := d.WaitTask(ctx, taskID)
	require.NoError(t, err)
	select {
	case result := <-ch:
		require.NotNil(t, result, "the wait channel closed without a result")
		return result
	case <-ctx.Done():
		t.Fatalf("task %s did not exit within %s", taskID, timeout)
		return nil
	}
}
