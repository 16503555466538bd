package container

import (
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
	"github.com/stretchr/testify/require"
)

var testInit = Init{Binary: "/plugins/nomad-driver-sshrerun", Config: "/task/private/init.json"}

func TestJobArgv(t *testing.T) {
	image := Image{Entrypoint: []string{"/entry"}, Cmd: []string{"default", "cmd"}}
	cases := []struct {
		name string
		task Task
		want []string
	}{
		{"image defaults", Task{}, []string{"/entry", "default", "cmd"}},
		{"command replaces cmd", Task{Command: "/bin/sh", Args: []string{"-c", "true"}}, []string{"/entry", "/bin/sh", "-c", "true"}},
		{"args alone replace cmd", Task{Args: []string{"x"}}, []string{"/entry", "x"}},
		{"entrypoint drops image cmd", Task{Entrypoint: []string{"/other"}}, []string{"/other"}},
		{"entrypoint and command", Task{Entrypoint: []string{"/other"}, Command: "run"}, []string{"/other", "run"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, JobArgv(tc.task, image))
		})
	}
}

func TestBuild_SSHBindingAndInit(t *testing.T) {
	req, err := Build(Spec{
		Identity: Identity{AllocID: "a1", TaskName: "build", JobName: "ci", JobID: "ci", AllocRoot: "/data/alloc"},
		Task:     Task{Image: "img", Command: "/bin/sh", Env: map[string]string{"B": "2", "A": "1"}},
		Dirs:     Dirs{Alloc: "/data/alloc", Local: "/data/build/local", Secrets: "/data/build/secrets"},
		Init:     Init{Binary: "/opt/nomad/plugins/nomad-driver-sshrerun", Config: "/data/build/private/init.json"},
		SSH:      &SSH{HostIP: "10.0.0.5", HostPort: 64535, ContainerPort: 2222},
	})
	require.NoError(t, err)

	require.Equal(t, "build-a1", req.Name)
	require.Equal(t, []string{"A=1", "B=2"}, req.Config.Env)
	require.Equal(t, []string{InitBinaryPath, InitSubcommand, "-config", InitConfigPath}, []string(req.Config.Entrypoint))
	require.Empty(t, req.Config.Cmd)

	bindings := req.HostConfig.PortBindings["2222/tcp"]
	require.Len(t, bindings, 1)
	require.Equal(t, "10.0.0.5", bindings[0].HostIP)
	require.Equal(t, "64535", bindings[0].HostPort)
	require.Contains(t, req.Config.ExposedPorts, PortKey(2222))

	require.Contains(t, req.HostConfig.Binds, "/opt/nomad/plugins/nomad-driver-sshrerun:"+InitBinaryPath+":ro")
	require.Contains(t, req.HostConfig.Binds, "/data/build/private/init.json:"+InitConfigPath+":ro")
	require.Contains(t, req.HostConfig.Binds, "/data/alloc:/alloc")
	require.Contains(t, req.HostConfig.Binds, "/data/build/local:/local")
	require.Contains(t, req.HostConfig.Binds, "/data/build/secrets:/secrets")

	require.Equal(t, "true", req.Config.Labels[LabelManaged])
	require.Equal(t, "a1", req.Config.Labels[LabelAllocID])
	require.Equal(t, "build", req.Config.Labels[LabelTaskName])
	require.Equal(t, "/data/alloc", req.Config.Labels[LabelAllocRoot])
}

func TestBuild_WithoutSSHHasNoPorts(t *testing.T) {
	req, err := Build(Spec{
		Identity: Identity{AllocID: "a1", TaskName: "build"},
		Task:     Task{Image: "img"},
		Image:    Image{Entrypoint: []string{"/entry"}, Cmd: []string{"run"}},
		Init:     testInit,
	})
	require.NoError(t, err)
	require.Equal(t, []string{InitBinaryPath, InitSubcommand, "-config", InitConfigPath}, []string(req.Config.Entrypoint))
	require.Empty(t, req.Config.Cmd)
	require.Empty(t, req.HostConfig.PortBindings)
	require.Empty(t, req.Config.ExposedPorts)
	require.NotContains(t, req.Config.Labels, LabelAllocRoot, "no alloc root was given")
}

func TestBuild_Errors(t *testing.T) {
	cases := []struct {
		name    string
		spec    Spec
		errText string
	}{
		{"no argv", Spec{Task: Task{Image: "img"}, Init: testInit}, `image "img" sets no ENTRYPOINT or CMD`},
		{"no init", Spec{Task: Task{Image: "img", Command: "x"}}, "the init binary and config paths must be set"},
		{"reserved label", Spec{Task: Task{Image: "img", Command: "x", Labels: map[string]string{LabelAllocID: "x"}}, Init: testInit}, "which the driver reserves"},
		{"bad host port", Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit, SSH: &SSH{HostPort: 0, ContainerPort: 2222}}, "ssh host port 0 is out of range"},
		{"bad container port", Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit, SSH: &SSH{HostPort: 64535, ContainerPort: 70000}}, "ssh container port 70000 is out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.spec)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.errText)
		})
	}
}

func TestName_ReplacesInvalidCharacters(t *testing.T) {
	require.Equal(t, "web_server-a1", Name(Identity{TaskName: "web server", AllocID: "a1"}))
	require.Equal(t, "x_task-a1", Name(Identity{TaskName: "_task", AllocID: "a1"}))
}

func TestBuild_Resources(t *testing.T) {
	const mib = 1024 * 1024
	cases := []struct {
		name                          string
		resources                     Resources
		memory, reservation, cpuShare int64
	}{
		{"memory only", Resources{CPUShares: 500, MemoryMB: 256}, 256 * mib, 0, 500},
		{"memory and memory_max", Resources{CPUShares: 100, MemoryMB: 128, MemoryMaxMB: 512}, 512 * mib, 128 * mib, 100},
		{"nothing set", Resources{}, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Build(Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit, Resources: tc.resources})
			require.NoError(t, err)
			require.Equal(t, tc.memory, req.HostConfig.Memory)
			require.Equal(t, tc.reservation, req.HostConfig.MemoryReservation)
			require.Equal(t, tc.cpuShare, req.HostConfig.CPUShares)
			require.Equal(t, tc.memory, req.HostConfig.MemorySwap)
		})
	}
}

// Reserved cores pin the container, as --cpuset-cpus does.
func TestBuild_ReservedCores(t *testing.T) {
	req, err := Build(Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit, Resources: Resources{CPUSet: "0,2"}})
	require.NoError(t, err)
	require.Equal(t, "0,2", req.HostConfig.CpusetCpus)

	req, err = Build(Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit})
	require.NoError(t, err)
	require.Empty(t, req.HostConfig.CpusetCpus)
}

func TestBuild_Privileged(t *testing.T) {
	req, err := Build(Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit})
	require.NoError(t, err)
	require.False(t, req.HostConfig.Privileged)

	req, err = Build(Spec{Task: Task{Image: "img", Command: "x", Privileged: true}, Init: testInit})
	require.NoError(t, err)
	require.True(t, req.HostConfig.Privileged)
}

func TestBuild_TaskPorts(t *testing.T) {
	req, err := Build(Spec{
		Task:  Task{Image: "img", Command: "x"},
		Init:  testInit,
		SSH:   &SSH{HostIP: "10.0.0.5", HostPort: 64535, ContainerPort: 2222},
		Ports: []Port{{Label: "http", HostIP: "10.0.0.5", HostPort: 64600, ContainerPort: 8080}},
	})
	require.NoError(t, err)

	// the SSH binding stays next to the task's port, which is published
	// for TCP and UDP
	require.Equal(t, nat.PortSet{"2222/tcp": {}, "8080/tcp": {}, "8080/udp": {}}, req.Config.ExposedPorts)
	require.Equal(t, nat.PortMap{
		"2222/tcp": {{HostIP: "10.0.0.5", HostPort: "64535"}},
		"8080/tcp": {{HostIP: "10.0.0.5", HostPort: "64600"}},
		"8080/udp": {{HostIP: "10.0.0.5", HostPort: "64600"}},
	}, req.HostConfig.PortBindings)
}

// Two labels may publish one container port on two host ports.
func TestBuild_TaskPortsShareContainerPort(t *testing.T) {
	req, err := Build(Spec{
		Task: Task{Image: "img", Command: "x"},
		Init: testInit,
		Ports: []Port{
			{Label: "a", HostIP: "127.0.0.1", HostPort: 64600, ContainerPort: 80},
			{Label: "b", HostIP: "127.0.0.1", HostPort: 64601, ContainerPort: 80},
		},
	})
	require.NoError(t, err)
	require.Equal(t, []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: "64600"}, {HostIP: "127.0.0.1", HostPort: "64601"}}, req.HostConfig.PortBindings["80/tcp"])
	require.Equal(t, []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: "64600"}, {HostIP: "127.0.0.1", HostPort: "64601"}}, req.HostConfig.PortBindings["80/udp"])
}

func TestBuild_TaskPortConflicts(t *testing.T) {
	ssh := &SSH{Label: "ssh", HostIP: "10.0.0.5", HostPort: 64535, ContainerPort: 2222}
	cases := []struct {
		name  string
		ports []Port
		want  string
	}{
		{"SSH's container port", []Port{{Label: "http", HostPort: 64600, ContainerPort: 2222}}, `port "http" maps to the container port 2222, where the SSH server of ssh.port = "ssh" listens`},
		{"host port out of range", []Port{{Label: "a", HostPort: 0, ContainerPort: 80}}, `port "a": host port 0 is out of range`},
		{"container port out of range", []Port{{Label: "a", HostPort: 64600, ContainerPort: 70000}}, `port "a": container port 70000 is out of range`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit, SSH: ssh, Ports: tc.ports})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestWorkingDir(t *testing.T) {
	image := Image{WorkingDir: "/app"}
	require.Equal(t, "/app", WorkingDir(Task{}, image))
	require.Equal(t, "/home/builder/project", WorkingDir(Task{WorkDir: "/home/builder/project"}, image))
	require.Equal(t, "", WorkingDir(Task{}, Image{}))
}

func TestBuild_MountsAndDevices(t *testing.T) {
	req, err := Build(Spec{
		Task:    Task{Image: "img", Command: "x"},
		Init:    testInit,
		Mounts:  []Mount{{HostPath: "/srv/cache", TaskPath: "/cache", ReadOnly: true, Propagation: "rslave"}},
		Devices: []Device{{HostPath: "/dev/fuse", TaskPath: "/dev/fuse", Permissions: "rwm"}},
	})
	require.NoError(t, err)
	require.Equal(t, []mount.Mount{{
		Type: mount.TypeBind, Source: "/srv/cache", Target: "/cache", ReadOnly: true,
		BindOptions: &mount.BindOptions{Propagation: mount.PropagationRSlave},
	}}, req.HostConfig.Mounts)
	require.Equal(t, []container.DeviceMapping{{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"}}, req.HostConfig.Devices)
}

func TestCheckMountTarget(t *testing.T) {
	for _, target := range []string{"/data", "/alloc/cache", "/home/circleci/.cache", "/.sshrerunx"} {
		require.NoError(t, CheckMountTarget(target), target)
	}
	cases := map[string]string{
		"data":             `volume_mount destination "data" is not an absolute path`,
		"/":                `volume_mount destination "/" would hide the driver's init at /.sshrerun`,
		"/.sshrerun":       `would hide the driver's init`,
		"/.sshrerun/":      `would hide the driver's init`,
		"/.sshrerun/event": `would hide the driver's init`,
		"/alloc":           `volume_mount destination "/alloc" is where Nomad's alloc directory is mounted; choose another destination, or a path below /alloc`,
		"/secrets/":        `is where Nomad's secrets directory is mounted`,
	}
	for target, want := range cases {
		require.ErrorContains(t, CheckMountTarget(target), want, target)
	}
}

func TestBuild_DNS(t *testing.T) {
	req, err := Build(Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit,
		DNS: &DNS{Servers: []string{"192.0.2.53"}, Searches: []string{"ci.example"}, Options: []string{"ndots:2"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"192.0.2.53"}, req.HostConfig.DNS)
	require.Equal(t, []string{"ci.example"}, req.HostConfig.DNSSearch)
	require.Equal(t, []string{"ndots:2"}, req.HostConfig.DNSOptions)

	req, err = Build(Spec{Task: Task{Image: "img", Command: "x"}, Init: testInit})
	require.NoError(t, err)
	require.Nil(t, req.HostConfig.DNS)
}

func TestBuild_ShmSize(t *testing.T) {
	req, err := Build(Spec{Task: Task{Image: "img", Command: "x", ShmSize: 1 << 30}, Init: testInit})
	require.NoError(t, err)
	require.Equal(t, int64(1<<30), req.HostConfig.ShmSize)
}
