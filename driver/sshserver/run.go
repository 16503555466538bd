package sshserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options are the settings of Run that do not come from the config file.
type Options struct {
	// Listener, if set, is used instead of listening on cfg.ListenAddress.
	// Run closes it before it returns, and closes it unused when
	// cfg.ListenAddress is empty.
	Listener net.Listener

	// Signals carries the signals to forward to the job. Main feeds it from
	// signal.Notify. A nil channel forwards nothing.
	Signals <-chan os.Signal

	// ReapOrphans makes the reaper collect every child with wait4(-1), as it
	// always does when the process is PID 1. Once set in a process it stays
	// on, and nothing else in that process may wait for child processes.
	ReapOrphans bool

	// Stdio are the job's stdin, stdout and stderr. Nil entries default to
	// the init's own os.Stdin, os.Stdout and os.Stderr.
	Stdio [3]*os.File
}

// Run starts the SSH server and the job, forwards signals to the job until
// it exits, then closes the listener, ends all sessions and returns the
// job's exit code. With an empty cfg.ListenAddress it starts no listener and
// no SSH server, and does everything else the same. It holds the FIFOs in
// cfg.HoldOpen open until it returns, and writes events to cfg.EventsPath.
//
// With SSH and cfg.WaitForConnection set, a hold (see hold) keeps the init
// up for SSH after the job exits or fails to start. Run returns the job's
// exit code even then.
//
// The error is non-nil when the job could not be started (exit code 126 or
// 127), when the init could not start (125) or when ctx ended before the
// job exited.
func Run(ctx context.Context, cfg *Config, logger hclog.Logger, opts Options) (int, error) {
	if err := cfg.Validate(); err != nil {
		closeListener(opts.Listener)
		return exitInitFailure, fmt.Errorf("invalid init config: %w", err)
	}

	id, err := runAsIdentity(cfg, logger)
	if err != nil {
		closeListener(opts.Listener)
		return exitInitFailure, err
	}

	heldFIFOs := holdFIFOs(cfg.HoldOpen, logger)
	defer closeHeldFIFOs(heldFIFOs)

	// Deferred before stopSSH, so that the file is closed after the server
	// has written the session_closed events of the connections it closes.
	events := openEventLog(cfg.EventsPath, logger)
	defer events.close()

	reaper := sharedReaper(logger)
	if opts.ReapOrphans || os.Getpid() == 1 {
		reaper.enableOrphanReaping()
	}

	srv, stopSSH, err := startSSH(cfg, id, reaper, events, opts.Listener, logger)
	if err != nil {
		return exitInitFailure, err
	}
	defer stopSSH()
	// after the listener is open, so that the connections that the echo
	// releases find the server
	if cfg.EchoGateway {
		echoGateway(logger)
	}

	code, stoppedBy, err := runJob(ctx, cfg, id, reaper, opts, logger)
	exited := time.Now()

	// After ctx ended, the caller wants Run to return, so there is no hold,
	// and after a stop signal the task is being stopped.
	var jobHold *hold
	switch {
	case ctx.Err() != nil:
	case stoppedBy != nil:
		logger.Info("no SSH hold, because the job was stopped", "signal", signalName(stoppedBy))
	default:
		jobHold = newHold(cfg, srv, exited)
	}
	events.write(jobExitedEvent(exited, code, jobHold))
	if jobHold != nil {
		jobHold.run(ctx, opts.Signals, events, logger)
	}
	return code, err
}

// runJob starts the job and supervises it until it exits, and returns its
// exit code and the first stop signal forwarded to it, or nil. A job that
// cannot be started returns 126 or 127 and a *jobStartError, which runJob
// logs, because a hold may follow before the caller sees it.
func runJob(ctx context.Context, cfg *Config, id *identity, reaper *reaper, opts Options, logger hclog.Logger) (int, os.Signal, error) {
	j, err := startJob(cfg, id, reaper, jobStdio(opts.Stdio))
	if err != nil {
		code := exitCannotExecute
		var startErr *jobStartError
		if errors.As(err, &startErr) {
			code = startErr.exitCode
		}
		logger.Error("job command failed to start", "command", cfg.Command, "error", err, "exit_code", code)
		return code, nil, err
	}
	logger.Info("job started", "pid", j.child.pid, "command", cfg.Command)

	status, err := superviseJob(ctx, j, opts.Signals, logger)
	return logJobExit(status, j.child.pid, logger), j.stoppedBy, err
}

// startSSH serves SSH on listener, or on a new listener for
// cfg.ListenAddress when listener is nil. It returns the server and a
// function that closes the listener and ends all sessions. With an empty
// cfg.ListenAddress, it closes listener, starts nothing and returns a nil
// server and a function that does nothing.
func startSSH(cfg *Config, id *identity, reaper *reaper, events *eventLog, listener net.Listener, logger hclog.Logger) (srv *server, stop func(), err error) {
	if cfg.ListenAddress == "" {
		closeListener(listener)
		logger.Info("SSH is disabled because listen_address is empty")
		return nil, func() {}, nil
	}

	srv, err = newServer(cfg, reaper, events, logger)
	if err != nil {
		closeListener(listener)
		return nil, nil, err
	}
	srv.identity = id

	if listener == nil {
		listener, err = net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			return nil, nil, fmt.Errorf("listening for SSH on %q: %w", cfg.ListenAddress, err)
		}
	}
	logger.Info("listening for SSH connections", "address", listener.Addr().String(), "user", cfg.User)

	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		if err := srv.serve(listener); err != nil {
			logger.Error("SSH server stopped accepting connections", "error", err)
		}
	}()

	stop = func() {
		srv.close()
		<-serveDone
	}
	return srv, stop, nil
}

func closeListener(listener net.Listener) {
	if listener != nil {
		_ = listener.Close()
	}
}

func jobStdio(stdio [3]*os.File) [3]*os.File {
	defaults := [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	for i := range stdio {
		if stdio[i] == nil {
			stdio[i] = defaults[i]
		}
	}
	return stdio
}

// runAsIdentity resolves cfg.RunAs, and with cfg.SetHome sets HOME to its
// home directory, which the job and the sessions inherit. It returns nil
// without RunAs.
func runAsIdentity(cfg *Config, logger hclog.Logger) (*identity, error) {
	if cfg.RunAs == "" {
		return nil, nil
	}
	id, err := resolveRunAs(cfg.RunAs)
	if err != nil {
		return nil, err
	}
	if cfg.SetHome && id.home != "" {
		if err := os.Setenv("HOME", id.home); err != nil {
			return nil, fmt.Errorf("failed to set HOME to %s: %w", id.home, err)
		}
	}
	logger.Info("the job and SSH sessions run as the container user", "run_as", cfg.RunAs,
		"uid", id.uid, "gid", id.gid, "groups", id.groups, "home", id.home)
	return id, nil
}
