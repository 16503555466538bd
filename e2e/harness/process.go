// Package harness starts the real components that the e2e tests and the
// demo run against: AWS's metadata mock and a Nomad agent with this plugin,
// both on 127.0.0.1. Everything it starts is stopped by its own PID, and
// containers are removed by their ID.
package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// ClosedLoopbackURL is where the cloud fingerprinters' and the AWS SDK's
// metadata URLs point, so that a missed setting fails fast on loopback
// instead of reaching a metadata address. Nothing listens on port 9 here.
const ClosedLoopbackURL = "http://127.0.0.1:9"

// SafetyEnv returns the environment entries that point every cloud metadata
// lookup of Nomad and of the AWS SDK at ClosedLoopbackURL.
func SafetyEnv() []string {
	return []string{
		"AWS_ENV_URL=" + ClosedLoopbackURL + "/latest/meta-data/",
		"GCE_ENV_URL=" + ClosedLoopbackURL + "/computeMetadata/v1/instance/",
		"AZURE_ENV_URL=" + ClosedLoopbackURL + "/metadata/instance/",
		"DO_ENV_URL=" + ClosedLoopbackURL + "/metadata/v1/",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + ClosedLoopbackURL,
	}
}

// Process is a program that the harness started.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// startProcess starts path with args, its output going to logPath.
func startProcess(name, logPath string, env []string, path string, args ...string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("failed to create the log file for %s: %w", name, err)
	}

	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	// its own process group, so that a Ctrl-C in the demo's terminal
	// reaches only the demo, which then stops this process by its PID
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("failed to start %s (%s): %w", name, path, err)
	}

	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	startedGroups.add(cmd.Process.Pid)
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process, by its PID, and SIGKILL when it is
// still running after timeout.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) did not stop within %s and was killed", p.Name, p.PID(), timeout)
}

// Kill sends SIGKILL to the process by its PID and waits for it to exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("failed to find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitForTCP polls addr until it accepts a connection or ctx ends.
func WaitForTCP(ctx context.Context, addr string) error {
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not accept connections: %w", addr, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Paths of what `make build` and `make tools` produce.
func PluginBinary() string {
	return filepath.Join(RepoRoot(), "build", "plugins", "nomad-driver-sshrerun")
}
func NomadBinary() string { return filepath.Join(RepoRoot(), ".cache", "tools", "nomad") }
func MockBinary() string  { return filepath.Join(RepoRoot(), ".cache", "tools", "ec2-metadata-mock") }

// InitBinary is the container init that `make build` embeds into the
// plugin. The benchmarks mount it into the containers of raw Docker and of
// Nomad's docker driver, so that all three run the same init.
func InitBinary() string {
	return filepath.Join(RepoRoot(), "driver", "initbin", "sshrerun-init")
}

// TestImage is the busybox image that hack/images/busybox.sh builds.
const TestImage = "nomad-driver-sshrerun/busybox:local"

// startedGroups are the process groups of every process that the harness
// started. Each started process leads its own group, so the group holds
// only that process and its descendants.
var startedGroups groupSet

type groupSet struct {
	mu   sync.Mutex
	pgid []int
}

func (g *groupSet) add(pgid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pgid = append(g.pgid, pgid)
}

func (g *groupSet) list() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.pgid...)
}

// StopLeftovers kills, by PID, every process still running in a process
// group that the harness started, such as the log collectors that a
// Nomad client leaves running for its next start to restore. Call it once
// the agents have stopped.
func StopLeftovers() {
	groups := map[int]bool{}
	for _, pgid := range startedGroups.list() {
		groups[pgid] = true
	}
	processes, err := listProcesses()
	if err != nil {
		return
	}
	for _, p := range processes {
		if p.pid != os.Getpid() && groups[p.group] {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
}
