package sshserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// Exit codes that the init returns when it cannot run the job. They follow
// the convention of env(1), timeout(1) and POSIX shells.
const (
	exitInitFailure   = 125 // the init itself failed (usage, config, listener)
	exitCannotExecute = 126 // the command was found but could not be started
	exitNotFound      = 127 // the command was not found
)

// forwardedSignals are the signals that the init passes on to the job.
var forwardedSignals = []os.Signal{
	syscall.SIGTERM,
	syscall.SIGINT,
	syscall.SIGHUP,
	syscall.SIGQUIT,
	syscall.SIGUSR1,
	syscall.SIGUSR2,
}

// job is the job's command, started through the reaper with the container's
// stdio and environment. It stays in the init's process group, which is the
// foreground group of a tty that Docker allocates, so the job can read it.
// NOTE: with such a tty, a SIGINT from the terminal reaches the job twice:
// directly and through forwarding.
type job struct {
	child  *child
	reaper *reaper

	// stoppedBy is the first stop signal forwarded to the job, or nil.
	stoppedBy os.Signal
}

// isStopSignal reports whether sig requests a stop of the container, as
// Nomad's kill_signal and `docker stop` send. A job that such a signal
// ended gets no SSH hold, because the stop came from outside and no
// developer is waiting to debug it.
func isStopSignal(sig os.Signal) bool {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP:
		return true
	}
	return false
}

// jobStartError is a failure to start the job's command, with the exit code
// that the init returns for it.
type jobStartError struct {
	exitCode int
	err      error
}

func (e *jobStartError) Error() string { return e.err.Error() }
func (e *jobStartError) Unwrap() error { return e.err }

// startJob starts cfg.Command in cfg.WorkingDir, as id when it is not nil,
// and first creates the directory when cfg.CreateWorkingDir is set. The
// error is a *jobStartError that names argv[0] and carries exit code 126
// or 127.
func startJob(cfg *Config, id *identity, reaper *reaper, stdio [3]*os.File) (*job, error) {
	// a hold may follow a directory that cannot be created, and its
	// sessions then start in / instead
	if cfg.CreateWorkingDir {
		if err := createWorkingDir(cfg.WorkingDir, id); err != nil {
			return nil, workingDirError(cfg, err)
		}
	}

	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Dir = cfg.WorkingDir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	if credential := id.credential(); credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential}
	}

	c, err := reaper.start(cmd)
	if err != nil {
		return nil, describeStartError(cfg, err)
	}
	return &job{child: c, reaper: reaper}, nil
}

// workingDirError returns the start error of a job whose working
// directory could not be created.
func workingDirError(cfg *Config, err error) *jobStartError {
	return &jobStartError{exitCannotExecute, fmt.Errorf("cannot start command %q: working directory %q could not be created: %w; create it in the image, or set work_dir in the task config to a directory that the job can use", cfg.Command[0], cfg.WorkingDir, err)}
}

func describeStartError(cfg *Config, err error) *jobStartError {
	name := cfg.Command[0]
	var pathErr *fs.PathError

	switch {
	case errors.As(err, &pathErr) && pathErr.Op == "chdir":
		return &jobStartError{exitCannotExecute, fmt.Errorf("cannot start command %q: working directory %q is not usable: %w; create it in the image, or set work_dir in the task config to a directory that the job can use", name, cfg.WorkingDir, pathErr.Err)}
	case errors.Is(err, exec.ErrNotFound):
		return &jobStartError{exitNotFound, fmt.Errorf("command %q not found in PATH %q; install it in the image or give its absolute path", name, os.Getenv("PATH"))}
	case errors.Is(err, fs.ErrNotExist):
		return &jobStartError{exitNotFound, fmt.Errorf("command %q not found: %w", name, err)}
	default:
		return &jobStartError{exitCannotExecute, fmt.Errorf("command %q cannot be executed: %w", name, err)}
	}
}

// superviseJob forwards each signal from signals to the job and returns the
// job's wait status once it exits. When ctx ends first, it kills the job
// with SIGKILL, waits for it and returns ctx.Err() as well.
//
// It only reports the exit, and the caller decides when the init returns.
// A step that keeps the container up after the job exits fits between them.
func superviseJob(ctx context.Context, j *job, signals <-chan os.Signal, logger hclog.Logger) (syscall.WaitStatus, error) {
	for {
		select {
		case <-j.child.done:
			return j.child.status, nil

		case sig := <-signals:
			if isStopSignal(sig) && j.stoppedBy == nil {
				j.stoppedBy = sig
			}
			forwardSignal(j, sig, logger)

		case <-ctx.Done():
			logger.Warn("stopping job because the init was canceled", "pid", j.child.pid, "error", ctx.Err())
			_ = j.reaper.signal(j.child, syscall.SIGKILL)
			<-j.child.done
			return j.child.status, ctx.Err()
		}
	}
}

// forwardSignal sends sig to the job process. Signals that are not a
// syscall.Signal cannot be sent with kill(2) and are dropped with a warning.
func forwardSignal(j *job, sig os.Signal, logger hclog.Logger) {
	number, ok := sig.(syscall.Signal)
	if !ok {
		logger.Warn("cannot forward signal to job", "signal", sig.String())
		return
	}

	err := j.reaper.signal(j.child, number)
	switch {
	case errors.Is(err, errProcessDone):
		logger.Debug("signal not forwarded because the job has exited", "signal", signalName(sig))
	case err != nil:
		logger.Error("failed to forward signal to job", "signal", signalName(sig), "pid", j.child.pid, "error", err)
	default:
		logger.Info("forwarded signal to job", "signal", signalName(sig), "pid", j.child.pid)
	}
}

// logJobExit logs the job's exit and returns its exit code.
func logJobExit(status syscall.WaitStatus, pid int, logger hclog.Logger) int {
	code := exitCode(status)
	if status.Signaled() {
		logger.Info("job exited", "pid", pid, "signal", signalName(status.Signal()), "exit_code", code)
	} else {
		logger.Info("job exited", "pid", pid, "exit_code", code)
	}
	return code
}
