package driver

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

func TestTaskMounts_Invalid(t *testing.T) {
	cases := []struct {
		mount drivers.MountConfig
		want  string
	}{
		{drivers.MountConfig{HostPath: "/srv", TaskPath: "/data", PropagationMode: "shared"}, `volume_mount destination "/data" has propagation_mode = "shared", which the driver does not know; use "private", "host-to-task" or "bidirectional"`},
		{drivers.MountConfig{HostPath: "/srv", TaskPath: "/.sshrerun"}, `volume_mount destination "/.sshrerun" would hide the driver's init`},
	}
	for _, tc := range cases {
		_, err := taskMounts(&drivers.TaskConfig{Mounts: []*drivers.MountConfig{&tc.mount}})
		require.ErrorContains(t, err, tc.want)
	}
}

// The task's volume mounts and devices from Nomad reach the container:
// a read-only mount cannot be written, a writable one writes through to
// the host, and a device is there with its permissions.
func TestDriver_MountsAndDevices(t *testing.T) {
	d := newTestDriver(t, nil)
	readOnly, writable := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(readOnly, "input"), []byte("from the host\n"), 0o644))

	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
	})
	task.Mounts = []*drivers.MountConfig{
		{HostPath: readOnly, TaskPath: "/input", Readonly: true},
		{HostPath: writable, TaskPath: "/output", PropagationMode: "private"},
	}
	task.Devices = []*drivers.DeviceConfig{{HostPath: "/dev/null", TaskPath: "/dev/sshrerun-null", Permissions: "rw"}}
	d.startTask(t, task)

	exec := func(script string) (string, int) {
		result, err := d.ExecTask(task.ID, []string{"/bin/sh", "-c", script}, 30*time.Second)
		require.NoError(t, err)
		return string(result.Stdout) + string(result.Stderr), result.ExitResult.ExitCode
	}
	out, code := exec("cat /input/input")
	require.Equal(t, 0, code, out)
	require.Equal(t, "from the host\n", out)

	out, code = exec("touch /input/denied")
	require.NotEqual(t, 0, code, "a read-only mount was written: %s", out)
	require.Contains(t, out, "Read-only file system")

	out, code = exec("echo from the job > /output/result")
	require.Equal(t, 0, code, out)
	written, err := os.ReadFile(filepath.Join(writable, "result"))
	require.NoError(t, err)
	require.Equal(t, "from the job\n", string(written))

	out, code = exec("test -c /dev/sshrerun-null && echo written > /dev/sshrerun-null && echo ok")
	require.Equal(t, 0, code, out)
	require.Equal(t, "ok\n", out)
}

func TestTaskDNS_Invalid(t *testing.T) {
	_, err := taskDNS(&drivers.TaskConfig{DNS: &drivers.DNSConfig{Servers: []string{"10.0.0.2", "dns.example"}}})
	require.EqualError(t, err, `network dns server "dns.example" is not an IP address; list IP addresses in the servers of the group's network dns block`)
	dns, err := taskDNS(&drivers.TaskConfig{})
	require.NoError(t, err)
	require.Nil(t, dns)

	for _, search := range []string{"bad domain!", "", "a..b", ".example", "-x.example"} {
		_, err = taskDNS(&drivers.TaskConfig{DNS: &drivers.DNSConfig{Searches: []string{search}}})
		require.ErrorContains(t, err, fmt.Sprintf("network dns search domain %q is not a domain name", search), search)
	}
	for _, option := range []string{"", "ndots: 2"} {
		_, err = taskDNS(&drivers.TaskConfig{DNS: &drivers.DNSConfig{Options: []string{option}}})
		require.ErrorContains(t, err, fmt.Sprintf("network dns option %q is empty or has white space", option), option)
	}
	dns, err = taskDNS(&drivers.TaskConfig{DNS: &drivers.DNSConfig{Searches: []string{"ci.example.com", "svc.cluster.local.", "_internal"}, Options: []string{"ndots:2", "rotate"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"ndots:2", "rotate"}, dns.Options)
}

// The dns block of the group's network becomes the container's
// resolv.conf.
func TestDriver_DNSFromNetwork(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
	})
	task.DNS = &drivers.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"ci.example"}, Options: []string{"ndots:2"}}
	d.startTask(t, task)

	result, err := d.ExecTask(task.ID, []string{"cat", "/etc/resolv.conf"}, 30*time.Second)
	require.NoError(t, err)
	resolv := string(result.Stdout)
	for _, line := range []string{"nameserver 192.0.2.53", "search ci.example", "options ndots:2"} {
		require.Contains(t, resolv, line+"\n")
	}
}

// A task that reserves cores runs on those cores only.
func TestDriver_ReservedCoresPinContainer(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
	})
	task.Resources.NomadResources.Cpu.ReservedCores = []uint16{0}
	task.Resources.LinuxResources = &drivers.LinuxResources{CPUShares: 100, CpusetCpus: "0"}
	handle, _ := d.startTask(t, task)

	inspect, err := d.docker.ContainerInspect(context.Background(), taskState(t, handle).ContainerID)
	require.NoError(t, err)
	require.Equal(t, "0", inspect.HostConfig.CpusetCpus)
	result, err := d.ExecTask(task.ID, []string{"/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status"}, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "Cpus_allowed_list:\t0\n", string(result.Stdout))
}

func TestExplainPropagation(t *testing.T) {
	mounts := []spec.Mount{
		{HostPath: "/srv/private", TaskPath: "/private", Propagation: "rprivate"},
		{HostPath: "/srv/cache", TaskPath: "/cache", Propagation: "rslave"},
	}
	engine := errors.New("path /srv/cache is mounted on / but it is not a shared or slave mount")
	require.EqualError(t, explainPropagation(engine, mounts),
		`path /srv/cache is mounted on / but it is not a shared or slave mount; volume_mount destination "/cache" sets propagation_mode "host-to-task", which needs the host mount that contains /srv/cache to be shared: run mount --make-rshared on that mount, or use propagation_mode = "private"`)

	other := errors.New("no such image")
	require.Equal(t, other, explainPropagation(other, mounts))
}

// A host-to-task mount of a host path on a private mount fails the start
// with the engine's error and the fix.
func TestDriver_PropagationNeedsSharedMount(t *testing.T) {
	require.Zero(t, os.Geteuid(), "this test makes a private bind mount, which needs root")
	host := t.TempDir()
	out, err := exec.Command("mount", "--bind", host, host).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("umount", host).Run() })
	out, err = exec.Command("mount", "--make-private", host).CombinedOutput()
	require.NoError(t, err, string(out))

	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{Image: testImage, Command: "/bin/true"})
	task.Mounts = []*drivers.MountConfig{{HostPath: host, TaskPath: "/data", PropagationMode: "host-to-task"}}
	d.mkAllocDir(t, task, false)

	_, _, err = d.StartTask(task)
	require.ErrorContains(t, err, `volume_mount destination "/data" sets propagation_mode "host-to-task"`)
	ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+task.AllocID)
	require.NoError(t, err)
	require.Empty(t, ids, "the container of the failed start was left")
}

// A destination that leads through links in the image to the init's
// folder or a task directory is refused; other links are fine.
func TestCheckResolvedMountTargets(t *testing.T) {
	d := newTestDriver(t, nil)
	ctx := context.Background()
	id := createdUserContainer(t, d.docker, []tar.Header{
		{Name: "srv/cache", Typeflag: tar.TypeDir},
		{Name: "opt/hidden", Typeflag: tar.TypeSymlink, Linkname: "/.sshrerun"},
		{Name: "opt/tasks", Typeflag: tar.TypeSymlink, Linkname: "../alloc"},
		{Name: "opt/cache", Typeflag: tar.TypeSymlink, Linkname: "/srv/cache"},
		{Name: "opt/up", Typeflag: tar.TypeSymlink, Linkname: "hidden"},
		{Name: "opt/x", Typeflag: tar.TypeSymlink, Linkname: "/opt"},
		{Name: "opt/loop", Typeflag: tar.TypeSymlink, Linkname: "loop"},
	}, nil)
	check := func(destination string) error {
		return checkResolvedMountTargets(ctx, d.docker, id, []spec.Mount{{HostPath: "/srv", TaskPath: destination}})
	}

	require.EqualError(t, check("/opt/hidden"), `volume_mount destination "/opt/hidden" leads through links in the image to /.sshrerun: volume_mount destination "/.sshrerun" would hide the driver's init at /.sshrerun; choose another destination, such as "/data"`)
	require.ErrorContains(t, check("/opt/up/events"), `volume_mount destination "/opt/up/events" leads through links in the image to /.sshrerun/events`)
	require.ErrorContains(t, check("/opt/tasks"), `leads through links in the image to /alloc: volume_mount destination "/alloc" is where Nomad's alloc directory is mounted`)
	require.NoError(t, check("/opt/cache"))
	require.NoError(t, check("/opt/cache/new/dir"))
	require.NoError(t, check("/data"))

	// a long chain of links, and a loop that the engine refuses to follow,
	// fail the start instead of passing unchecked
	require.ErrorContains(t, check("/opt/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/hidden"), `leads through links in the image to /.sshrerun`)
	require.ErrorContains(t, check("/opt/loop/data"), `failed to resolve volume_mount destination "/opt/loop/data" in the container`)
}
