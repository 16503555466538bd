package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/helper/testlog"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/stretchr/testify/require"
)

// A plugin that carries the init installs it into data_dir, and containers
// mount that file: SSH works, and the file comes back when it is deleted.
func TestDriver_EmbeddedInitMounted(t *testing.T) {
	initBytes, err := os.ReadFile(testInitBinary)
	require.NoError(t, err)
	dataDir := filepath.Join(t.TempDir(), "init")
	config := defaultTestPluginConfig(t)
	config["data_dir"] = dataDir

	d := newTestDriverWith(t, config, func(impl *Driver) {
		impl.initBinary = ""
		impl.embeddedInit = initBytes
	})
	entries, err := os.ReadDir(dataDir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "SetConfig installs the init")
	installed := filepath.Join(dataDir, entries[0].Name())

	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newSleepingSSHTask(t, port, key)
	handle, _ := d.startTask(t, task)
	requireInitMount(t, d, taskState(t, handle).ContainerID, installed)
	c := dialSSH(t, port, "root", key)
	out, status := runSSH(t, c, "echo hello")
	c.Close()
	require.Equal(t, 0, status)
	require.Equal(t, "hello\n", out)
	// the harness closes its client when a second alloc dir is removed, so
	// the first task goes before the second starts
	require.NoError(t, d.DestroyTask(task.ID, true))

	// a cleanup that empties data_dir does not break the next start
	require.NoError(t, os.Remove(installed))
	port2 := freeSSHPort(t)
	task2 := newSleepingSSHTask(t, port2, key)
	handle2, _ := d.startTask(t, task2)
	requireInitMount(t, d, taskState(t, handle2).ContainerID, installed)
	c2 := dialSSH(t, port2, "root", key)
	c2.Close()
}

// A plugin config whose data_dir other users may write is refused, since
// every container would run what they put there.
func TestDriver_EmbeddedInitRejectsSharedDir(t *testing.T) {
	dataDir := t.TempDir()
	require.NoError(t, os.Chmod(dataDir, 0o777))
	d := NewPlugin(testlog.HCLogger(t))
	t.Cleanup(d.Shutdown)
	d.embeddedInit = []byte("the init")

	var encoded []byte
	require.NoError(t, base.MsgPackEncode(&encoded, &PluginConfig{DataDir: dataDir}))
	err := d.SetConfig(&base.Config{PluginConfig: encoded})
	require.Error(t, err)
	require.Contains(t, err.Error(), "plugin config data_dir: "+dataDir+" has mode")
	require.Contains(t, err.Error(), "run chmod go-w "+dataDir)
}

// requireInitMount checks that the container runs the init at hostPath,
// read-only.
func requireInitMount(t *testing.T, d *testDriver, containerID, hostPath string) {
	t.Helper()
	info, err := d.docker.ContainerInspect(context.Background(), containerID)
	require.NoError(t, err)
	for _, m := range info.Mounts {
		if strings.HasPrefix(m.Destination, "/.sshrerun/") && m.Source == hostPath {
			require.False(t, m.RW, "the init is mounted writable")
			return
		}
	}
	t.Fatalf("container %s does not mount the init %s: %+v", containerID, hostPath, info.Mounts)
}
