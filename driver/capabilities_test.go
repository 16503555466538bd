package driver

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNormalizeCapabilities(t *testing.T) {
	got, err := normalizeCapabilities("task config cap_add", []string{"cap_sys_ptrace", "SYS_PTRACE", " net_admin ", "all"})
	require.NoError(t, err)
	require.Equal(t, []string{"SYS_PTRACE", "NET_ADMIN", "ALL"}, got)

	_, err = normalizeCapabilities("task config cap_add", []string{"SYS_PTRACE", "PTRACE"})
	require.EqualError(t, err, `task config cap_add has "PTRACE", which is not a Linux capability; use a name from capabilities(7) such as "SYS_PTRACE", or "ALL"`)
}

func TestContainerCapabilities(t *testing.T) {
	_, _, err := containerCapabilities([]string{"SYS_PTRACE"}, nil, DefaultAllowCaps)
	require.ErrorContains(t, err, `task config cap_add has "SYS_PTRACE", which this client does not allow (allow_caps: AUDIT_WRITE, CHOWN,`)
	require.ErrorContains(t, err, "add it to allow_caps in the plugin config of the client, or remove it from the task")

	add, drop, err := containerCapabilities([]string{"SYS_PTRACE"}, []string{"NET_RAW"}, append([]string{"SYS_PTRACE"}, DefaultAllowCaps...))
	require.NoError(t, err)
	require.Equal(t, []string{"SYS_PTRACE"}, add)
	require.Equal(t, []string{"NET_RAW"}, drop)

	// the init keeps what it needs
	add, drop, err = containerCapabilities(nil, []string{"ALL"}, DefaultAllowCaps)
	require.NoError(t, err)
	require.Equal(t, []string{"CHOWN", "KILL", "SETGID", "SETUID"}, add)
	require.Equal(t, []string{"ALL"}, drop)
	add, drop, err = containerCapabilities(nil, []string{"SETUID", "NET_RAW"}, DefaultAllowCaps)
	require.NoError(t, err)
	require.Empty(t, add)
	require.Equal(t, []string{"NET_RAW"}, drop)

	// allow_caps = ["ALL"] allows every capability
	add, _, err = containerCapabilities([]string{"SYS_ADMIN", "ALL"}, nil, []string{"ALL"})
	require.NoError(t, err)
	require.Equal(t, []string{"SYS_ADMIN", "ALL"}, add)
}

func TestPluginConfig_AllowCaps(t *testing.T) {
	s, err := validatePluginConfig(&PluginConfig{})
	require.NoError(t, err)
	require.Equal(t, DefaultAllowCaps, s.allowCaps)

	s, err = validatePluginConfig(&PluginConfig{AllowCaps: []string{"cap_sys_ptrace", "CHOWN"}})
	require.NoError(t, err)
	require.Equal(t, []string{"SYS_PTRACE", "CHOWN"}, s.allowCaps)

	_, err = validatePluginConfig(&PluginConfig{AllowCaps: []string{"TRACE"}})
	require.EqualError(t, err, `plugin config allow_caps has "TRACE", which is not a Linux capability; use a name from capabilities(7) such as "SYS_PTRACE", or "ALL"`)
}

// capabilityBit is the bit of a capability in /proc/PID/status masks.
var capabilityBit = map[string]uint{"NET_RAW": 13, "SYS_PTRACE": 19}

// boundingSet returns the CapBnd mask of a process in the task, read
// through exec.
func boundingSet(t *testing.T, d *testDriver, taskID string) uint64 {
	t.Helper()
	result, err := d.ExecTask(taskID, []string{"/bin/sh", "-c", "grep CapBnd /proc/1/status"}, 30*time.Second)
	require.NoError(t, err)
	field := strings.Fields(string(result.Stdout))
	require.Len(t, field, 2, string(result.Stdout))
	mask, err := strconv.ParseUint(field[1], 16, 64)
	require.NoError(t, err)
	return mask
}

// cap_add and cap_drop change the container's capabilities, and the init
// still runs the job as the image's user after cap_drop = ["ALL"].
func TestDriver_Capabilities(t *testing.T) {
	config := defaultTestPluginConfig(t)
	config["allow_caps"] = append([]interface{}{"SYS_PTRACE"}, toInterfaces(DefaultAllowCaps)...)
	d := newTestDriver(t, config)

	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		CapAdd:  []string{"SYS_PTRACE"},
		CapDrop: []string{"NET_RAW"},
	})
	d.startTask(t, task)
	mask := boundingSet(t, d, task.ID)
	require.NotZero(t, mask&(1<<capabilityBit["SYS_PTRACE"]), "SYS_PTRACE is missing from %x", mask)
	require.Zero(t, mask&(1<<capabilityBit["NET_RAW"]), "NET_RAW is still in %x", mask)
	// the harness closes its client when a second alloc dir is removed, so
	// the first task goes before the second starts
	require.NoError(t, d.DestroyTask(task.ID, true))

	key := newUserKey(t)
	port := freeSSHPort(t)
	dropped := newTask(t, port, &TaskConfig{
		Image:   testUserImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "id -u > /tmp/job-uid; while :; do sleep 0.1; done"},
		CapDrop: []string{"ALL"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, dropped)
	require.Equal(t, uint64(1<<0|1<<5|1<<6|1<<7), boundingSet(t, d, dropped.ID), "want CHOWN, KILL, SETGID and SETUID")
	c := dialSSH(t, port, "root", key)
	defer c.Close()
	require.Eventually(t, func() bool {
		out, _ := runSSH(t, c, "cat /tmp/job-uid")
		return out == "1000\n"
	}, 10*time.Second, 50*time.Millisecond, "the job did not run as the image's user")
}

func toInterfaces(values []string) []interface{} {
	out := make([]interface{}, len(values))
	for i, value := range values {
		out[i] = value
	}
	return out
}
