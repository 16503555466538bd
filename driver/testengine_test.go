package driver

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"
)

// Bounds on the private engine's start and stop. An engine without
// live-restore stops its containers before it exits, which takes up to
// their stop timeout.
const (
	testEngineStartTimeout = 90 * time.Second
	testEngineStopTimeout  = 90 * time.Second
)

// testEngine is a Docker engine that a test starts for itself: its own
// dockerd and containerd, data root, exec root, socket and bridge. The test
// may stop and restart it without touching the machine's engine. It uses
// the vfs storage driver, which works on any file system, and leaves
// iptables alone: docker-proxy forwards the published ports on 127.0.0.1.
type testEngine struct {
	t           *testing.T
	liveRestore bool

	// dir is the short temporary directory that holds the roots, the
	// socket and the log. Unix socket paths must stay under 108 bytes,
	// which a path from t.TempDir can exceed once containerd appends its
	// own.
	dir    string
	bridge string

	// Endpoint is the engine's socket as a docker_endpoint value.
	Endpoint string
	Client   *client.Client

	// process is the running dockerd, or nil while the engine is stopped.
	process *engineProcess
}

// engineProcess is one run of dockerd and the containerd it started.
type engineProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}

	// containerd is the pid of dockerd's containerd child, or 0 when
	// none was found.
	containerd      int
	containerdStart string
}

// startTestEngine starts a private engine, loads the test image into it
// and registers its teardown. It fails the test, and never skips it, when
// dockerd is missing.
func startTestEngine(t *testing.T, liveRestore bool) *testEngine {
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil {
		t.Fatalf("dockerd not found in PATH (%v); install the docker.io package, which .ci/run does when it is missing", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip not found in PATH (%v); install the iproute2 package", err)
	}

	dir, err := os.MkdirTemp("", "sre-")
	require.NoError(t, err)
	e := &testEngine{
		t:           t,
		liveRestore: liveRestore,
		dir:         dir,
		bridge:      "sre" + randomHex(t, 4),
		Endpoint:    "unix://" + filepath.Join(dir, "docker.sock"),
	}
	t.Cleanup(e.teardown)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644))
	e.createBridge()

	e.Client, err = client.NewClientWithOpts(client.WithHost(e.Endpoint), client.WithAPIVersionNegotiation())
	require.NoError(t, err)

	e.Start()
	e.loadTestImage()
	return e
}

// Start starts dockerd with the engine's roots and waits until it responds.
func (e *testEngine) Start() {
	e.t.Helper()
	if err := e.start(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEngine) start() error {
	if e.process != nil {
		return errors.New("the test engine is running already")
	}

	args := []string{
		"--config-file", filepath.Join(e.dir, "daemon.json"),
		"--data-root", filepath.Join(e.dir, "d"),
		"--exec-root", filepath.Join(e.dir, "x"),
		"--pidfile", filepath.Join(e.dir, "dockerd.pid"),
		"--host", e.Endpoint,
		"--storage-driver", "vfs",
		"--bridge", e.bridge,
		"--iptables=false",
		"--ip-masq=false",
	}
	if e.liveRestore {
		args = append(args, "--live-restore")
	}
	logFile, err := os.OpenFile(e.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open the dockerd log: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command("dockerd", args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// a test binary that dies takes its engine along
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start dockerd: %w", err)
	}
	p := &engineProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	e.process = p
	e.t.Logf("started dockerd pid %d at %s (live-restore %t)", cmd.Process.Pid, e.Endpoint, e.liveRestore)

	// poll until the engine responds, or fail with its log
	deadline := time.Now().Add(testEngineStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := e.Client.Ping(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-p.exited:
			e.process = nil
			return fmt.Errorf("dockerd exited during start: %v\n%s", cmd.ProcessState, e.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd at %s did not respond within %s: %w\n%s", e.Endpoint, testEngineStartTimeout, err, e.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}

	p.containerd, p.containerdStart = findChild(cmd.Process.Pid, "containerd")
	if p.containerd == 0 {
		e.t.Logf("no containerd child of dockerd pid %d found, so its exit cannot be checked", cmd.Process.Pid)
	}
	return nil
}

// Stop sends SIGTERM to dockerd, waits for it to exit and checks that its
// containerd exited too.
func (e *testEngine) Stop() {
	e.t.Helper()
	if err := e.stop(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEngine) stop() error {
	p := e.process
	if p == nil {
		return nil
	}
	e.process = nil
	pid := p.cmd.Process.Pid

	// dockerd, by its pid
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("failed to send SIGTERM to dockerd pid %d: %w", pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(testEngineStopTimeout):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("dockerd pid %d did not exit within %s of SIGTERM and was killed\n%s", pid, testEngineStopTimeout, e.logTail())
	}

	// its containerd stops when dockerd does
	if p.containerd != 0 {
		deadline := time.Now().Add(30 * time.Second)
		for processAlive(p.containerd, p.containerdStart) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(p.containerd, syscall.SIGKILL)
				return fmt.Errorf("containerd pid %d was still running 30s after its dockerd pid %d exited, and was killed", p.containerd, pid)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	e.t.Logf("dockerd pid %d and containerd pid %d exited", pid, p.containerd)
	return nil
}

// teardown removes what the engine left: its containers, its processes,
// its mounts, its bridge and its directory. It reports leftovers as test
// errors.
func (e *testEngine) teardown() {
	// containers first: a live-restore engine would leave them running, so
	// one that a failed test left stopped is started again to remove them
	if e.process == nil && e.liveRestore && e.Client != nil {
		if err := e.start(); err != nil {
			e.t.Errorf("failed to start the test engine again to remove its containers: %v", err)
		}
	}
	if e.process != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		list, err := e.Client.ContainerList(ctx, container.ListOptions{All: true})
		if err != nil {
			e.t.Errorf("failed to list the test engine's containers: %v", err)
		}
		for _, c := range list {
			if err := e.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
				e.t.Errorf("failed to remove container %s from the test engine: %v", c.ID, err)
			}
		}
		cancel()
	}
	if err := e.stop(); err != nil {
		e.t.Error(err)
	}
	if e.Client != nil {
		_ = e.Client.Close()
	}

	// shims and proxies of this engine name its exec root or socket
	for _, pid := range processesMentioning(e.dir) {
		e.t.Errorf("process %d of the test engine was left running; killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}

	// mounts under the roots, deepest first
	mounts := mountsUnder(e.t, e.dir)
	for _, mountPoint := range mounts {
		// a point mounted twice is listed twice, and the second unmount
		// finds nothing there
		if err := syscall.Unmount(mountPoint, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			e.t.Errorf("failed to unmount %s: %v", mountPoint, err)
		}
	}

	if out, err := exec.Command("ip", "link", "del", e.bridge).CombinedOutput(); err != nil && linkExists(e.bridge) {
		e.t.Errorf("failed to delete bridge %s: %v: %s", e.bridge, err, out)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Errorf("failed to remove the test engine's directory: %v", err)
	}
}

// createBridge creates the engine's bridge with the first 10.213.N.1/24
// whose network no interface of the host uses.
func (e *testEngine) createBridge() {
	e.t.Helper()
	subnet, err := freeSubnet()
	require.NoError(e.t, err)

	commands := [][]string{
		{"link", "add", e.bridge, "type", "bridge"},
		{"addr", "add", subnet, "dev", e.bridge},
		{"link", "set", e.bridge, "up"},
	}
	for _, args := range commands {
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(e.t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	e.t.Logf("created bridge %s with %s", e.bridge, subnet)
}

// loadTestImage copies the test image from the machine's engine.
func (e *testEngine) loadTestImage() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	main, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	require.NoError(e.t, err)
	defer main.Close()
	archive, err := main.ImageSave(ctx, []string{testImage})
	require.NoError(e.t, err, "failed to save %s from the machine's engine", testImage)
	defer archive.Close()

	response, err := e.Client.ImageLoad(ctx, archive)
	require.NoError(e.t, err, "failed to load %s into the test engine", testImage)
	defer response.Body.Close()
	_, err = io.ReadAll(response.Body)
	require.NoError(e.t, err)

	_, err = e.Client.ImageInspect(ctx, testImage)
	require.NoError(e.t, err, "the test engine lacks %s after the load", testImage)
}

func (e *testEngine) logPath() string {
	return filepath.Join(e.dir, "dockerd.log")
}

// logTail returns the last lines of dockerd's log.
func (e *testEngine) logTail() string {
	data, _ := os.ReadFile(e.logPath())
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// freeSubnet returns the bridge address of the first 10.213.N.0/24 that no
// interface address falls in.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("failed to list interface addresses: %w", err)
	}
	for n := 0; n < 256; n++ {
		_, network, _ := net.ParseCIDR(fmt.Sprintf("10.213.%d.0/24", n))
		used := false
		for _, addr := range addrs {
			if ipNet, ok := addr.(*net.IPNet); ok && (network.Contains(ipNet.IP) || ipNet.Contains(network.IP)) {
				used = true
				break
			}
		}
		if !used {
			return fmt.Sprintf("10.213.%d.1/24", n), nil
		}
	}
	return "", errors.New("every subnet 10.213.0.0/24 to 10.213.255.0/24 is in use")
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// procStat returns the parent pid, the command name and the start time of
// process pid, from /proc/pid/stat.
func procStat(pid int) (ppid int, comm, start string, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", "", false
	}
	// the command name is in parentheses and may contain spaces
	open, closing := strings.IndexByte(string(data), '('), strings.LastIndexByte(string(data), ')')
	if open < 0 || closing < open {
		return 0, "", "", false
	}
	comm = string(data[open+1 : closing])
	fields := strings.Fields(string(data[closing+1:]))
	// fields[0] is the state, fields[1] the parent pid, fields[19] the start time
	if len(fields) < 20 || fields[0] == "Z" {
		return 0, "", "", false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, comm, fields[19], true
}

// findChild returns the pid and start time of the child of parent named
// comm, or 0 when there is none.
func findChild(parent int, comm string) (int, string) {
	for _, pid := range allPIDs() {
		ppid, name, start, ok := procStat(pid)
		if ok && ppid == parent && name == comm {
			return pid, start
		}
	}
	return 0, ""
}

// processAlive reports whether process pid runs and started at start, so
// that a reused pid does not count.
func processAlive(pid int, start string) bool {
	_, _, current, ok := procStat(pid)
	return ok && current == start
}

// processesMentioning returns the pids of live processes whose command
// line contains s.
func processesMentioning(s string) []int {
	var pids []int
	for _, pid := range allPIDs() {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, _, _, ok := procStat(pid); ok && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, entry := range entries {
		if pid, err := strconv.Atoi(entry.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(t *testing.T, dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("failed to read the mount table: %v", err)
		return nil
	}
	defer f.Close()

	var mounts []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		// the fifth field is the mount point, with spaces escaped as \040
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		mountPoint := fields[4]
		if mountPoint == dir || strings.HasPrefix(mountPoint, dir+"/") {
			mounts = append(mounts, mountPoint)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}
