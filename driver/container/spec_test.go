package container

import (
	"testing"

	"github.com/stretchr/testify/require"
)

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
		Identity: Identity{AllocID: "a1", TaskName: "build", JobName: "ci", JobID: "ci"},
		Task:     Task{Image: "img", Command: "/bin/sh", Env: map[string]string{"B": "2", "A": "1"}},
		Dirs:     Dirs{Alloc: "/data/alloc", Local: "/data/build/local", Secrets: "/data/build/secrets"},
		SSH: &SSH{
			HostIP: "10.0.0.5", HostPort: 64535, ContainerPort: 2222,
			InitBinary: "/opt/nomad/plugins/nomad-driver-sshrerun", InitConfig: "/data/build/private/init.json",
		},
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
}

func TestBuild_WithoutSSHRunsArgvDirectly(t *testing.T) {
	req, err := Build(Spec{
		Identity: Identity{AllocID: "a1", TaskName: "build"},
		Task:     Task{Image: "img"},
		Image:    Image{Entrypoint: []string{"/entry"}, Cmd: []string{"run"}},
	})
	require.NoError(t, err)
	require.Equal(t, []string{"/entry"}, []string(req.Config.Entrypoint))
	require.Equal(t, []string{"run"}, []string(req.Config.Cmd))
	require.Empty(t, req.HostConfig.PortBindings)
}

func TestBuild_Errors(t *testing.T) {
	cases := []struct {
		name    string
		spec    Spec
		errText string
	}{
		{"no argv", Spec{Task: Task{Image: "img"}}, `image "img" sets no ENTRYPOINT or CMD`},
		{"reserved label", Spec{Task: Task{Image: "img", Command: "x", Labels: map[string]string{LabelAllocID: "x"}}}, "which the driver reserves"},
		{"bad host port", Spec{Task: Task{Image: "img", Command: "x"}, SSH: &SSH{HostPort: 0, ContainerPort: 2222, InitBinary: "b", InitConfig: "c"}}, "ssh host port 0 is out of range"},
		{"bad container port", Spec{Task: Task{Image: "img", Command: "x"}, SSH: &SSH{HostPort: 64535, ContainerPort: 70000, InitBinary: "b", InitConfig: "c"}}, "ssh container port 70000 is out of range"},
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
