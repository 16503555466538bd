package driver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// waitJobScript runs until /tmp/done exists, then exits with code 7.
const waitJobScript = "echo started; while [ ! -e /tmp/done ]; do sleep 0.1; done; exit 7"

func TestDriver_SSHLoginAndExitCode(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", waitJobScript},
		Env:     map[string]string{"GREETING": "hello"},
		SSH:     &SSHConfig{Port: "ssh", User: "root", AuthorizedKeys: []string{key.authorizedKey}},
	})

	handle, network := d.startTask(t, task)

	// the network maps the label to the SSH server's default port and does
	// not advertise the container's address
	require.Equal(t, map[string]int{"ssh": 2222}, network.PortMap)
	require.False(t, network.AutoAdvertise)

	var state TaskState
	require.NoError(t, handle.GetDriverState(&state))
	require.NotEmpty(t, state.ContainerID)
	require.NotNil(t, state.SSH)
	require.Equal(t, "127.0.0.1", state.SSH.Host)
	require.Equal(t, port, state.SSH.Port)

	// the container carries the project's labels and the SSH binding
	info, err := d.docker.ContainerInspect(context.Background(), state.ContainerID)
	require.NoError(t, err)
	require.Equal(t, "build-"+task.AllocID, strings.TrimPrefix(info.Name, "/"))
	require.Equal(t, task.AllocID, info.Config.Labels["nomad-driver-sshrerun.alloc_id"])
	require.Equal(t, "build", info.Config.Labels["nomad-driver-sshrerun.task_name"])
	require.Equal(t, "ci-build", info.Config.Labels["nomad-driver-sshrerun.job_name"])
	bindings := info.HostConfig.PortBindings["2222/tcp"]
	require.Len(t, bindings, 1)
	require.Equal(t, "127.0.0.1", bindings[0].HostIP)
	require.Equal(t, strconv.Itoa(port), bindings[0].HostPort)

	// log in and run a command that prints the task's environment
	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, status := runSSH(t, c, "echo $GREETING $NOMAD_ALLOC_ID; exit 4")
	require.Equal(t, 4, status)
	require.Equal(t, "hello "+task.AllocID+"\n", out)

	// the job's exit code reaches WaitTask
	_, status = runSSH(t, c, "touch /tmp/done")
	require.Equal(t, 0, status)
	result := d.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 7, result.ExitCode)
	require.False(t, result.OOMKilled)

	status2, err := d.InspectTask(task.ID)
	require.NoError(t, err)
	require.Equal(t, drivers.TaskStateExited, status2.State)

	// destroy removes the container
	require.NoError(t, d.DestroyTask(task.ID, false))
	ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+task.AllocID)
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestDriver_StopTaskKillsAfterTimeout(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		// ignores SIGTERM, so only the kill after the timeout ends it
		Args: []string{"-c", "trap '' TERM; while :; do sleep 0.1; done"},
		SSH:  &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, task)

	// the init must be up before the signal; see StopTaskSignalReachesJob
	dialSSH(t, port, "root", key).Close()

	require.NoError(t, d.StopTask(task.ID, time.Second, "SIGTERM"))
	result := d.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 137, result.ExitCode)

	// a running task cannot be destroyed without force, an exited one can
	require.NoError(t, d.DestroyTask(task.ID, false))
	_, err := d.InspectTask(task.ID)
	require.ErrorContains(t, err, drivers.ErrTaskNotFound.Error())
}

func TestDriver_StopTaskSignalReachesJob(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "trap 'exit 42' INT; while :; do sleep 0.1; done"},
		// a stop skips the hold: with one, the kill after the timeout
		// would end the task with 137
		SSH: &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}, WaitForConnection: "10m"},
	})
	d.startTask(t, task)

	// the init must be up before the signal: a signal that reaches PID 1
	// before the init installs its handlers ends it with exit code 2
	dialSSH(t, port, "root", key).Close()

	require.NoError(t, d.StopTask(task.ID, 20*time.Second, "SIGINT"))
	result := d.waitExit(t, task.ID, 15*time.Second)
	require.Equal(t, 42, result.ExitCode)
}

func TestDriver_DestroyForceRemovesRunningTask(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	task := newSleepingSSHTask(t, freeSSHPort(t), key)
	d.startTask(t, task)

	err := d.DestroyTask(task.ID, false)
	require.Error(t, err)
	require.Contains(t, err.Error(), "still running")

	require.NoError(t, d.DestroyTask(task.ID, true))
	ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+task.AllocID)
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestDriver_ReadyEvent(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		SSH:     &SSHConfig{Port: "ssh", User: "ci", AuthorizedKeys: []string{key.authorizedKey}},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := d.TaskEvents(ctx)
	require.NoError(t, err)

	handle, _ := d.startTask(t, task)
	var state TaskState
	require.NoError(t, handle.GetDriverState(&state))

	var event *drivers.TaskEvent
	for event == nil {
		select {
		case e := <-events:
			if e.TaskID == task.ID {
				event = e
			}
		case <-ctx.Done():
			t.Fatal("no task event arrived")
		}
	}

	require.Equal(t, "ssh -p "+strconv.Itoa(port)+" ci@127.0.0.1  # host key "+state.SSH.HostKeyFingerprint, event.Message)
	require.Equal(t, state.SSH.HostPublicKey, event.Annotations["host_key"])
	require.True(t, strings.HasPrefix(state.SSH.HostPublicKey, "ssh-ed25519 "), state.SSH.HostPublicKey)
	require.Equal(t, task.AllocID, event.AllocID)
	require.Equal(t, "127.0.0.1", event.Annotations["ssh_host"])
	require.Equal(t, strconv.Itoa(port), event.Annotations["ssh_port"])
	require.Equal(t, "ci", event.Annotations["ssh_user"])
	require.Equal(t, "override-file", event.Annotations["advertise_source"])
	require.Equal(t, state.SSH.HostKeyFingerprint, event.Annotations["host_key_fingerprint"])

	// the host key that the server presents is the one reported
	var presented string
	config := sshClientConfig("ci", key)
	config.HostKeyCallback = func(_ string, _ net.Addr, hostKey ssh.PublicKey) error {
		presented = ssh.FingerprintSHA256(hostKey)
		return nil
	}
	c := dialSSHWithConfig(t, port, config)
	c.Close()
	require.Equal(t, state.SSH.HostKeyFingerprint, presented)
}

func TestDriver_RecoverTask(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", waitJobScript},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	handle, _ := d.startTask(t, task)

	// a second plugin process takes over the task from its handle
	recovered := newTestDriver(t, nil)
	require.NoError(t, recovered.RecoverTask(handle))
	status, err := recovered.InspectTask(task.ID)
	require.NoError(t, err)
	require.Equal(t, drivers.TaskStateRunning, status.State)

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	_, code := runSSH(t, c, "touch /tmp/done")
	require.Equal(t, 0, code)

	result := recovered.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 7, result.ExitCode)
	require.NoError(t, recovered.DestroyTask(task.ID, false))
}

func TestDriver_RecoverTaskMissingContainer(t *testing.T) {
	d := newTestDriver(t, nil)
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = &drivers.TaskConfig{ID: "missing", AllocID: "missing", Name: "build"}
	require.NoError(t, handle.SetDriverState(&TaskState{ContainerID: "0000000000000000000000000000000000000000000000000000000000000000"}))

	err := d.RecoverTask(handle)
	require.Error(t, err)
	require.Contains(t, err.Error(), "no longer exists")
}

func TestDriver_StartTaskErrors(t *testing.T) {
	key := newUserKey(t)

	cases := []struct {
		name    string
		config  TaskConfig
		errText string
	}{
		{
			name:    "unknown port label",
			config:  TaskConfig{Image: testImage, SSH: &SSHConfig{Port: "debug", AuthorizedKeys: []string{key.authorizedKey}}},
			errText: `ssh.port = "debug" is not a port label of this task (labels: [ssh]); declare it in the group's network block`,
		},
		{
			name:    "unparsable key",
			config:  TaskConfig{Image: testImage, SSH: &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey, "ssh-rsa AAAA"}}},
			errText: `task config ssh.authorized_keys[1] "ssh-rsa AAAA"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// MkAllocDir's cleanup closes the harness, so each case has its own
			d := newTestDriver(t, nil)
			task := newTask(t, freeSSHPort(t), &tc.config)
			d.mkAllocDir(t, task, false)

			_, _, err := d.StartTask(task)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.errText)

			ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+task.AllocID)
			require.NoError(t, err)
			require.Empty(t, ids)
		})
	}
}

func TestDriver_NumericNonRootUser(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newSleepingSSHTask(t, port, key)
	task.User = "1000:1000"
	d.startTask(t, task)

	// the job and the sessions run as the task's user, with the HOME that
	// Docker gives a user without an /etc/passwd entry
	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, status := runSSH(t, c, "id -u; id -g; echo $HOME")
	require.Equal(t, 0, status)
	require.Equal(t, "1000\n1000\n/\n", out)

	// the init runs as root: the user can neither read its config, which
	// holds the host key, nor write to its event file
	_, status = runSSH(t, c, "cat /.sshrerun/config.json")
	require.NotEqual(t, 0, status)
	_, status = runSSH(t, c, "echo forged >> /.sshrerun/events/events.jsonl")
	require.NotEqual(t, 0, status)
}

func TestDriver_MemoryLimitAndOOMKill(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image: testImage,
		// reads without end into memory until the limit kills it
		Command: "/bin/tail",
		Args:    []string{"/dev/zero"},
	})
	task.Resources.NomadResources.Memory.MemoryMB = 16
	task.Resources.NomadResources.Cpu.CpuShares = 250
	handle, _ := d.startTask(t, task)

	info, err := d.docker.ContainerInspect(context.Background(), taskState(t, handle).ContainerID)
	require.NoError(t, err)
	require.Equal(t, int64(16*1024*1024), info.HostConfig.Memory)
	require.Equal(t, int64(250), info.HostConfig.CPUShares)

	result := d.waitExit(t, task.ID, time.Minute)
	require.True(t, result.OOMKilled, "exit result %+v", result)
	require.Equal(t, 137, result.ExitCode)
}

func TestDriver_MemoryMaxIsTheLimit(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	task := newSleepingSSHTask(t, freeSSHPort(t), key)
	task.Resources.NomadResources.Memory.MemoryMB = 64
	task.Resources.NomadResources.Memory.MemoryMaxMB = 128
	handle, _ := d.startTask(t, task)

	info, err := d.docker.ContainerInspect(context.Background(), taskState(t, handle).ContainerID)
	require.NoError(t, err)
	require.Equal(t, int64(128*1024*1024), info.HostConfig.Memory)
	require.Equal(t, int64(64*1024*1024), info.HostConfig.MemoryReservation)
}

func TestDriver_SignalTaskReachesJob(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "trap 'echo got > /tmp/usr1' USR1; while :; do sleep 0.1; done"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, task)
	c := dialSSH(t, port, "root", key)
	defer c.Close()

	require.NoError(t, d.SignalTask(task.ID, "SIGUSR1"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := runSSH(t, c, "cat /tmp/usr1 2>/dev/null")
		if out == "got\n" {
			break
		}
		require.True(t, time.Now().Before(deadline), "SIGUSR1 never reached the job")
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDriver_TaskDirectoriesMounted(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newSleepingSSHTask(t, port, key)
	d.startTask(t, task)

	// files that Nomad writes into the task's directories on the host
	taskDir := task.TaskDir()
	require.NoError(t, os.WriteFile(filepath.Join(taskDir.SharedAllocDir, "data", "shared.txt"), []byte("alloc\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(taskDir.LocalDir, "local.txt"), []byte("local\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(taskDir.SecretsDir, "token"), []byte("secret\n"), 0o600))

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, status := runSSH(t, c, "cat /alloc/data/shared.txt /local/local.txt /secrets/token; echo $NOMAD_TASK_DIR $NOMAD_SECRETS_DIR")
	require.Equal(t, 0, status)
	require.Equal(t, "alloc\nlocal\nsecret\n/local /secrets\n", out)
}

func TestDriver_RecoverTaskExitedWhileDown(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", waitJobScript},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	handle, _ := d.startTask(t, task)
	containerID := taskState(t, handle).ContainerID

	// the plugin stops, and the job exits before a new plugin starts
	d.impl.Shutdown()
	c := dialSSH(t, port, "root", key)
	_, status := runSSH(t, c, "touch /tmp/done")
	c.Close()
	require.Equal(t, 0, status)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := d.docker.ContainerInspect(context.Background(), containerID)
		require.NoError(t, err)
		if !info.State.Running {
			break
		}
		require.True(t, time.Now().Before(deadline), "the container did not exit")
		time.Sleep(100 * time.Millisecond)
	}

	recovered := newTestDriver(t, nil)
	require.NoError(t, recovered.RecoverTask(handle))
	result := recovered.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 7, result.ExitCode)

	// recovery reports the exit and never starts the container again
	info, err := d.docker.ContainerInspect(context.Background(), containerID)
	require.NoError(t, err)
	require.False(t, info.State.Running)
	require.NoError(t, recovered.DestroyTask(task.ID, false))
}

func TestDriver_PrivilegedNeedsPluginConsent(t *testing.T) {
	key := newUserKey(t)
	config := func() *TaskConfig {
		return &TaskConfig{
			Image:      testImage,
			Command:    "/bin/sh",
			Args:       []string{"-c", "while :; do sleep 0.1; done"},
			Privileged: true,
			SSH:        &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
		}
	}

	// the default plugin config refuses
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), config())
	d.mkAllocDir(t, task, false)
	_, _, err := d.StartTask(task)
	require.ErrorContains(t, err, "this client does not allow privileged containers; set allow_privileged = true")

	// a client that allows it gets past the check. The engine that runs
	// these tests cannot start privileged containers (runc cannot apply
	// the capabilities in this sandbox), so the create request's flag is
	// checked in the container package's tests.
	override := filepath.Join(t.TempDir(), "public-ipv4")
	require.NoError(t, os.WriteFile(override, []byte("127.0.0.1\n"), 0o644))
	allowed := newTestDriver(t, map[string]interface{}{
		"allow_privileged": true,
		"advertise":        map[string]interface{}{"override_file": override, "imds_endpoint": "http://127.0.0.1:9"},
	})
	task = newTask(t, freeSSHPort(t), config())
	allowed.mkAllocDir(t, task, false)
	_, _, err = allowed.StartTask(task)
	t.Cleanup(func() {
		_ = allowed.DestroyTask(task.ID, true)
		allowed.removeAllocContainers(t, task.AllocID)
	})
	if err != nil {
		require.NotContains(t, err.Error(), "does not allow privileged containers")
	}
}

func TestDriver_StartRemovesContainerOfEarlierStart(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	task := newSleepingSSHTask(t, freeSSHPort(t), key)

	// a container that an earlier start of the same task left running, as
	// when the plugin is killed in StartTask after the engine started it
	ctx := context.Background()
	leftover, err := d.docker.ContainerCreate(ctx, &container.Config{
		Image:      testImage,
		Entrypoint: []string{"/bin/sh", "-c", "while :; do sleep 0.1; done"},
		Labels: map[string]string{
			"nomad-driver-sshrerun.managed":   "true",
			"nomad-driver-sshrerun.alloc_id":  task.AllocID,
			"nomad-driver-sshrerun.task_name": task.Name,
		},
	}, nil, nil, nil, "build-"+task.AllocID)
	require.NoError(t, err)
	require.NoError(t, d.docker.ContainerStart(ctx, leftover.ID, container.StartOptions{}))

	handle, _ := d.startTask(t, task)
	require.NotEqual(t, leftover.ID, taskState(t, handle).ContainerID)
	_, err = d.docker.ContainerInspect(ctx, leftover.ID)
	require.Error(t, err, "the earlier start's container is still there")
	ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+task.AllocID)
	require.NoError(t, err)
	require.Equal(t, []string{taskState(t, handle).ContainerID}, ids)
}

func TestDriver_StartKeepsForeignContainerWithSameName(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/true",
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.mkAllocDir(t, task, false)

	// a container that the driver did not create holds the name
	ctx := context.Background()
	foreign, err := d.docker.ContainerCreate(ctx, &container.Config{Image: testImage, Cmd: []string{"/bin/true"}}, nil, nil, nil, "build-"+task.AllocID)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.docker.ContainerRemove(ctx, foreign.ID, container.RemoveOptions{Force: true}) })

	_, _, err = d.StartTask(task)
	require.ErrorContains(t, err, "the name is taken by a container that this task did not create")
	_, err = d.docker.ContainerInspect(ctx, foreign.ID)
	require.NoError(t, err)
}
