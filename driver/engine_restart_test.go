package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
)

// markerJobScript prints a line at start, the content of /local/mark each
// time that file appears, and a line when SIGTERM stops it. /local is the
// task's local directory, which the test writes on the host.
const markerJobScript = `echo job started
trap 'echo job stopped; exit 0' TERM
while :; do
	if [ -e /local/mark ]; then cat /local/mark; rm /local/mark; fi
	sleep 0.1
done`

// newEngineTestDriver returns a driver whose docker_endpoint is engine.
func newEngineTestDriver(t *testing.T, engine *testEngine) *testDriver {
	t.Helper()
	override := filepath.Join(t.TempDir(), "public-ipv4")
	require.NoError(t, os.WriteFile(override, []byte("127.0.0.1\n"), 0o644))
	d := newTestDriver(t, map[string]interface{}{
		"docker_endpoint": engine.Endpoint,
		"advertise": map[string]interface{}{
			"override_file": override,
			// never used while the override file exists
			"imds_endpoint": "http://127.0.0.1:9",
		},
	})
	d.docker = engine.Client
	return d
}

// watchFingerprints starts the fingerprint loop until the test ends.
func watchFingerprints(t *testing.T, d *testDriver) <-chan *drivers.Fingerprint {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)
	return ch
}

func healthIs(state drivers.HealthState) func(*drivers.Fingerprint) bool {
	return func(fp *drivers.Fingerprint) bool { return fp.Health == state }
}

func TestEngineRestart_LiveRestoreKeepsTask(t *testing.T) {
	engine := startTestEngine(t, true)
	d := newEngineTestDriver(t, engine)
	fingerprints := watchFingerprints(t, d)
	nextFingerprint(t, fingerprints, time.Minute, healthIs(drivers.HealthStateHealthy))

	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", markerJobScript},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	handle := d.startTaskWithLogs(t, task)
	dialSSH(t, port, "root", key).Close()
	waitForLog(t, task, "stdout", func(s string) bool { return strings.Contains(s, "job started\n") })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exitCh, err := d.WaitTask(ctx, task.ID)
	require.NoError(t, err)

	// the engine stops: the fingerprint reports it, the task keeps running
	engine.Stop()
	fp := nextFingerprint(t, fingerprints, time.Minute, func(fp *drivers.Fingerprint) bool {
		return fp.Health != drivers.HealthStateHealthy
	})
	require.Equal(t, drivers.HealthStateUndetected, fp.Health)
	require.Contains(t, fp.HealthDescription, engine.Endpoint)
	require.Contains(t, fp.HealthDescription, "not reachable")
	status, err := d.InspectTask(task.ID)
	require.NoError(t, err)
	require.Equal(t, drivers.TaskStateRunning, status.State)

	// calls that need the engine fail at once and name the container
	start := time.Now()
	err = d.SignalTask(task.ID, "SIGWINCH")
	require.ErrorContains(t, err, taskState(t, handle).ContainerID)
	require.Less(t, time.Since(start), 30*time.Second)

	// the job writes output while the engine is down
	mark := filepath.Join(task.TaskDir().LocalDir, "mark")
	require.NoError(t, os.WriteFile(mark, []byte("during outage\n"), 0o644))
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(mark)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the job did not consume %s within 30s", mark)
		time.Sleep(50 * time.Millisecond)
	}

	// it starts again with the same roots, and live-restore kept the
	// container
	engine.Start()
	nextFingerprint(t, fingerprints, time.Minute, healthIs(drivers.HealthStateHealthy))
	select {
	case result := <-exitCh:
		t.Fatalf("the task was reported exited across a live-restore restart: %+v", result)
	default:
	}
	status, err = d.InspectTask(task.ID)
	require.NoError(t, err)
	require.Equal(t, drivers.TaskStateRunning, status.State)

	// SSH logins work again once the engine republishes the port
	c := dialSSH(t, port, "root", key)
	defer c.Close()
	_, code := runSSH(t, c, "echo after restart > /local/mark")
	require.Equal(t, 0, code)

	// output written during the outage and after the restart reaches the
	// log, and none of the earlier output is repeated
	stdout := waitForLog(t, task, "stdout", func(s string) bool { return strings.Contains(s, "after restart\n") })
	require.Equal(t, "job started\nduring outage\nafter restart\n", stdout)

	// stop and destroy work as before the restart
	require.NoError(t, d.StopTask(task.ID, 30*time.Second, "SIGTERM"))
	select {
	case result := <-exitCh:
		require.NotNil(t, result)
		require.Equal(t, 0, result.ExitCode)
		require.NoError(t, result.Err)
	case <-time.After(time.Minute):
		t.Fatal("the task did not exit within 1m of StopTask")
	}
	waitForLog(t, task, "stdout", func(s string) bool { return strings.HasSuffix(s, "job stopped\n") })
	require.NoError(t, d.DestroyTask(task.ID, false))
	ids, err := projectContainers(engine.Client)
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestEngineRestart_WithoutLiveRestoreReportsExit(t *testing.T) {
	engine := startTestEngine(t, false)
	d := newEngineTestDriver(t, engine)
	fingerprints := watchFingerprints(t, d)
	nextFingerprint(t, fingerprints, time.Minute, healthIs(drivers.HealthStateHealthy))

	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newSleepingSSHTask(t, port, key)
	handle := d.startTaskWithLogs(t, task)
	dialSSH(t, port, "root", key).Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exitCh, err := d.WaitTask(ctx, task.ID)
	require.NoError(t, err)

	// the engine stops its containers on shutdown, and the task's exit
	// names the cause
	engine.Stop()
	var result *drivers.ExitResult
	select {
	case result = <-exitCh:
	case <-time.After(2 * time.Minute):
		t.Fatal("WaitTask did not return within 2m of the engine's stop")
	}
	require.NotNil(t, result)
	require.Error(t, result.Err)
	t.Logf("exit result: code %d, error %q", result.ExitCode, result.Err)
	require.Contains(t, result.Err.Error(), "Docker engine")
	require.Contains(t, result.Err.Error(), "live-restore")
	status, err := d.InspectTask(task.ID)
	require.NoError(t, err)
	require.Equal(t, drivers.TaskStateExited, status.State)

	fp := nextFingerprint(t, fingerprints, time.Minute, func(fp *drivers.Fingerprint) bool {
		return fp.Health != drivers.HealthStateHealthy
	})
	require.Equal(t, drivers.HealthStateUndetected, fp.Health)
	require.Contains(t, fp.HealthDescription, engine.Endpoint)

	// while the engine is down, destroy fails at once and names the
	// container
	start := time.Now()
	err = d.DestroyTask(task.ID, false)
	require.ErrorContains(t, err, taskState(t, handle).ContainerID)
	require.Less(t, time.Since(start), 30*time.Second)

	// once the engine is back, destroy removes the container
	engine.Start()
	require.NoError(t, d.DestroyTask(task.ID, false))
	ids, err := projectContainers(engine.Client)
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestEngineRestart_TaskExitsWhileEngineDown(t *testing.T) {
	engine := startTestEngine(t, true)
	d := newEngineTestDriver(t, engine)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while [ ! -e /local/exit-now ]; do sleep 0.1; done; exit 3"},
	})
	handle := d.startTaskWithLogs(t, task)
	containerID := taskState(t, handle).ContainerID

	// the container's init is the process that must exit while the engine
	// is down
	info, err := engine.Client.ContainerInspect(context.Background(), containerID)
	require.NoError(t, err)
	require.NotNil(t, info.State)
	initPID := info.State.Pid
	_, _, initStart, ok := procStat(initPID)
	require.True(t, ok, "the container's init, pid %d, is not running", initPID)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exitCh, err := d.WaitTask(ctx, task.ID)
	require.NoError(t, err)

	// the job exits while the engine is down
	engine.Stop()
	require.NoError(t, os.WriteFile(filepath.Join(task.TaskDir().LocalDir, "exit-now"), nil, 0o644))
	deadline := time.Now().Add(30 * time.Second)
	for processAlive(initPID, initStart) {
		require.True(t, time.Now().Before(deadline), "the container's init, pid %d, did not exit within 30s", initPID)
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case result := <-exitCh:
		t.Fatalf("the exit was reported while the engine was down: %+v", result)
	default:
	}

	// the engine returns and the driver reports the exit with the outage
	// as its cause
	engine.Start()
	var result *drivers.ExitResult
	select {
	case result = <-exitCh:
	case <-time.After(time.Minute):
		t.Fatal("WaitTask did not return within 1m of the engine's start")
	}
	require.NotNil(t, result)
	require.Equal(t, 3, result.ExitCode)
	require.Error(t, result.Err)
	t.Logf("exit result: code %d, error %q", result.ExitCode, result.Err)
	require.Contains(t, result.Err.Error(), containerID)
	require.Contains(t, result.Err.Error(), "Docker engine at "+engine.Endpoint+" was unreachable")
	require.NotContains(t, result.Err.Error(), "without live-restore")

	require.NoError(t, d.DestroyTask(task.ID, false))
	ids, err := projectContainers(engine.Client)
	require.NoError(t, err)
	require.Empty(t, ids)
}
