package sshserver

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// errProcessDone is returned when a signal is sent to a child that has
// already been reaped.
var errProcessDone = errors.New("process already exited")

// reaper is the only code in the process that waits for child processes.
// One goroutine calls wait4 on every SIGCHLD and hands each exit status to
// the child registered under that PID.
//
// Safety invariant: wait4 is only called while mu is held, and a child is
// started and registered while mu is held. So a child that exits at once
// cannot be reaped before it is registered. Also, the PID of a child that
// is not yet reaped cannot be reused, so kill(pid) under mu reaches the
// child and no other process.
//
// Because wait4(-1) collects every child of the process, nothing else in
// the process may call exec.Cmd.Wait or os.Process.Wait. Commands started
// through the reaper must use only *os.File stdio, because for other
// readers and writers exec.Cmd.Start spawns copying goroutines that only
// Wait would join.
type reaper struct {
	logger  hclog.Logger
	sigchld chan os.Signal

	mu          sync.Mutex
	children    map[int]*child
	reapOrphans bool
}

// child is a process started through the reaper.
type child struct {
	pid  int
	done chan struct{} // closed after status is set
	// status is the wait status, valid once done is closed.
	status syscall.WaitStatus
}

var (
	sharedReaperOnce     sync.Once
	sharedReaperInstance *reaper
)

// sharedReaper returns the process-wide reaper and starts it on first use.
// A process can have only one, because wait4(-1) collects the children of
// every other reaper too. The logger of the first call is kept.
func sharedReaper(logger hclog.Logger) *reaper {
	sharedReaperOnce.Do(func() {
		sharedReaperInstance = &reaper{
			logger:   logger.Named("reaper"),
			sigchld:  make(chan os.Signal, 1),
			children: make(map[int]*child),
		}
		signal.Notify(sharedReaperInstance.sigchld, syscall.SIGCHLD)
		go sharedReaperInstance.run()
	})
	return sharedReaperInstance
}

// enableOrphanReaping switches the reaper from waiting for registered PIDs
// only to wait4(-1), which also reaps orphans that the kernel reparents to
// PID 1. It cannot be switched off again.
func (r *reaper) enableOrphanReaping() {
	r.mu.Lock()
	r.reapOrphans = true
	r.reapLocked()
	r.mu.Unlock()
}

func (r *reaper) run() {
	// The signal channel holds at most one pending SIGCHLD, and signals
	// coalesce, so every wake-up reaps until no exited child is left.
	for range r.sigchld {
		r.mu.Lock()
		r.reapLocked()
		r.mu.Unlock()
	}
}

func (r *reaper) reapLocked() {
	if !r.reapOrphans {
		// NOTE: the tests enable orphan reaping for the whole test process,
		// so they do not run this per-PID path.
		for pid := range r.children {
			r.waitLocked(pid)
		}
		return
	}

	for {
		pid, registered, ok := r.waitLocked(-1)
		if !ok {
			return
		}
		if !registered {
			r.logger.Debug("reaped orphaned process", "pid", pid)
		}
	}
}

// waitLocked calls wait4(pid, WNOHANG) once and hands a collected status to
// its registered child. It returns the PID collected, whether that PID was
// registered, and false if no exited child was collected.
func (r *reaper) waitLocked(pid int) (reaped int, registered bool, ok bool) {
	var status syscall.WaitStatus
	for {
		reaped, err := syscall.Wait4(pid, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || reaped <= 0 {
			// ECHILD means no children are left, and 0 means none has exited.
			return 0, false, false
		}

		c, registered := r.children[reaped]
		if registered {
			c.status = status
			delete(r.children, reaped)
			close(c.done)
		}
		return reaped, registered, true
	}
}

// start starts cmd and registers its PID in one step under mu.
// cmd must not be waited for with cmd.Wait; use the returned child.
func (r *reaper) start(cmd *exec.Cmd) (*child, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	if err := cmd.Start(); err != nil {
		return nil, err
	}

	c := &child{pid: cmd.Process.Pid, done: make(chan struct{})}
	r.children[c.pid] = c

	// Release closes the pidfd that os.StartProcess keeps. The reaper waits
	// by PID, which is safe because of the invariant above.
	_ = cmd.Process.Release()
	return c, nil
}

// signal sends sig to the child unless it has been reaped.
func (r *reaper) signal(c *child, sig syscall.Signal) error {
	return r.kill(c, c.pid, sig)
}

// signalGroup sends sig to the process group that the child leads unless
// the child has been reaped. The child must have been started with Setpgid
// or Setsid, so that its PID is its process group ID.
func (r *reaper) signalGroup(c *child, sig syscall.Signal) error {
	return r.kill(c, -c.pid, sig)
}

func (r *reaper) kill(c *child, target int, sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()

	select {
	case <-c.done:
		return errProcessDone
	default:
	}
	return syscall.Kill(target, sig)
}

// exitCode converts a wait status to a shell-style exit code: the exit
// status, or 128 plus the signal number for a process killed by a signal.
func exitCode(status syscall.WaitStatus) int {
	if status.Signaled() {
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}
