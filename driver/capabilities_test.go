package driver

import (
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
	_, err := containerCapabilities([]string{"SYS_PTRACE"}, nil, DefaultAllowCaps)
	require.ErrorContains(t, err, `task config cap_add has "SYS_PTRACE", which this client does not allow (allow_caps: AUDIT_WRITE, CHOWN,`)
	require.ErrorContains(t, err, "add it to allow_caps in the plugin config of the client, or remove it from the task")
	_, err = containerCapabilities([]string{"SYS_PTRACE"}, nil, []string{})
	require.ErrorContains(t, err, "(allow_caps: none)")

	// as in Nomad's docker driver, the default allow_caps drops NET_RAW
	set, err := containerCapabilities(nil, nil, DefaultAllowCaps)
	require.NoError(t, err)
	require.Equal(t, capabilityChange{Drop: []string{"NET_RAW"}}, set)

	set, err = containerCapabilities([]string{"SYS_PTRACE", "NET_RAW"}, []string{"MKNOD"}, append([]string{"SYS_PTRACE", "NET_RAW"}, DefaultAllowCaps...))
	require.NoError(t, err)
	require.Equal(t, capabilityChange{Add: []string{"SYS_PTRACE", "NET_RAW"}, Drop: []string{"MKNOD"}}, set)

	// the init keeps what it needs, and reports it
	init := []string{"CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETUID"}
	set, err = containerCapabilities(nil, []string{"ALL"}, DefaultAllowCaps)
	require.NoError(t, err)
	require.Equal(t, capabilityChange{Add: init, Drop: []string{"ALL"}, KeptForInit: init}, set)
	set, err = containerCapabilities(nil, []string{"SETUID", "MKNOD"}, DefaultAllowCaps)
	require.NoError(t, err)
	require.Equal(t, capabilityChange{Drop: []string{"MKNOD", "NET_RAW"}, KeptForInit: []string{"SETUID"}}, set)

	// what cap_add names back is not reported as kept
	set, err = containerCapabilities([]string{"CHOWN", "KILL"}, []string{"ALL"}, DefaultAllowCaps)
	require.NoError(t, err)
	require.Equal(t, capabilityChange{Add: []string{"CHOWN", "KILL", "DAC_OVERRIDE", "SETGID", "SETUID"}, Drop: []string{"ALL"}, KeptForInit: []string{"DAC_OVERRIDE", "SETGID", "SETUID"}}, set)

	// defaults that allow_caps leaves out are dropped, except the init's
	set, err = containerCapabilities(nil, nil, []string{"CHOWN", "SETUID"})
	require.NoError(t, err)
	require.Equal(t, []string{"AUDIT_WRITE", "FOWNER", "FSETID", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETPCAP", "SYS_CHROOT"}, set.Drop)
	require.Empty(t, set.KeptForInit)

	// allow_caps = ["ALL"], or every capability by name, allows cap_add = ["ALL"]
	set, err = containerCapabilities([]string{"SYS_ADMIN", "ALL"}, nil, []string{"ALL"})
	require.NoError(t, err)
	require.Equal(t, []string{"SYS_ADMIN", "ALL"}, set.Add)
	_, err = containerCapabilities([]string{"ALL"}, nil, knownCapabilities)
	require.NoError(t, err)
	_, err = containerCapabilities([]string{"ALL"}, nil, DefaultAllowCaps)
	require.ErrorContains(t, err, `task config cap_add has "ALL", which this client does not allow`)
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

// boundingSet returns the CapBnd mask of the container's init, read
// through exec.
func boundingSet(t *testing.T, d *testDriver, taskID string) uint64 {
	t.Helper()
	result, err := d.ExecTask(taskID, []string{"cat", "/proc/1/status"}, 30*time.Second)
	require.NoError(t, err)
	return capabilitySet(t, string(result.Stdout), "CapBnd")
}

// cap_add and cap_drop change the container's capabilities, and the init
// still creates work_dir and runs the job as the image's user after
// cap_drop = ["ALL"].
func TestDriver_Capabilities(t *testing.T) {
	config := defaultTestPluginConfig(t)
	config["allow_caps"] = append([]interface{}{"SYS_PTRACE", "NET_RAW"}, toInterfaces(DefaultAllowCaps)...)
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
		Args:    []string{"-c", "id -u > /tmp/job-uid; touch made-by-job; while :; do sleep 0.1; done"},
		CapDrop: []string{"ALL"},
		WorkDir: "/home/builder/project",
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, dropped)
	require.Equal(t, uint64(1<<0|1<<1|1<<5|1<<6|1<<7), boundingSet(t, d, dropped.ID), "want CHOWN, DAC_OVERRIDE, KILL, SETGID and SETUID")
	c := dialSSH(t, port, "root", key)
	defer c.Close()
	require.Eventually(t, func() bool {
		out, _ := runSSH(t, c, "cat /tmp/job-uid")
		return out == "1000\n"
	}, 10*time.Second, 50*time.Millisecond, "the job did not run as the image's user")
	out, status := runSSH(t, c, "pwd; stat -c '%u %a' . made-by-job")
	require.Equal(t, 0, status, out)
	require.Equal(t, "/home/builder/project\n1000 755\n1000 644\n", out)
}

func toInterfaces(values []string) []interface{} {
	out := make([]interface{}, len(values))
	for i, value := range values {
		out[i] = value
	}
	return out
}
