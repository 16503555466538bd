package sshserver

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

// hangupGracePeriod is the time between SIGHUP and SIGKILL when the client
// closes a pty session's channel before its process exits.
const hangupGracePeriod = 5 * time.Second

// session serves one "session" channel. The serve goroutine handles its
// requests one at a time. After a shell or exec request starts a process,
// waitProcess sends the exit status and closes the channel. After an sftp
// subsystem request, serveSFTP does.
type session struct {
	server  *server
	channel ssh.Channel
	logger  hclog.Logger

	env     []string    // NAME=value pairs from env requests
	pty     *ptyRequest // nil unless a pty-req was accepted
	started bool        // a shell, exec or subsystem request was accepted
	proc    *sessionProcess
	// finished is closed once the exit status was sent and the channel
	// closed, including when the process could not be started.
	finished chan struct{}
}

// ptyRequest is the terminal that a pty-req requested.
// NOTE: the terminal modes of the request are ignored, so the pty starts
// with the kernel's default settings (echo and canonical mode on).
type ptyRequest struct {
	term   string
	window windowSize
}

// windowSize is a terminal size in characters and pixels.
type windowSize struct {
	columns, rows, width, height uint32
}

func newSession(srv *server, channel ssh.Channel, logger hclog.Logger) *session {
	return &session{
		server:   srv,
		channel:  channel,
		logger:   logger,
		finished: make(chan struct{}),
	}
}

// serve handles requests until the channel closes, then stops the
// process if it is still running.
func (sess *session) serve(requests <-chan *ssh.Request) {
	for req := range requests {
		sess.handleRequest(req)
	}
	sess.stopProcess()
}

func (sess *session) handleRequest(req *ssh.Request) {
	var ok bool
	switch req.Type {
	case "env":
		ok = sess.handleEnv(req.Payload)
	case "pty-req":
		ok = sess.handlePTYRequest(req.Payload)
	case "window-change":
		ok = sess.handleWindowChange(req.Payload)
	case "signal":
		ok = sess.handleSignal(req.Payload)
	case "shell":
		// A leading "-" in argv[0] makes it a login shell, as OpenSSH does.
		sess.handleStart(req, []string{"-sh"}, "shell")
		return
	case "subsystem":
		sess.handleSubsystem(req)
		return
	case "exec":
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			sess.logger.Debug("invalid exec request", "error", err)
			break
		}
		sess.logger.Debug("exec request", "command", payload.Command)
		sess.handleStart(req, []string{"sh", "-c", payload.Command}, "exec")
		return
	default:
		sess.logger.Debug("rejected session request", "request_type", req.Type)
	}

	// Reply is a no-op for requests that do not want a reply.
	_ = req.Reply(ok, nil)
}

func (sess *session) handleEnv(payload []byte) bool {
	var variable struct{ Name, Value string }
	if err := ssh.Unmarshal(payload, &variable); err != nil {
		sess.logger.Debug("invalid env request", "error", err)
		return false
	}
	if sess.started || variable.Name == "" || strings.ContainsAny(variable.Name, "=\x00") || strings.Contains(variable.Value, "\x00") {
		sess.logger.Debug("rejected env request", "name", variable.Name)
		return false
	}

	sess.env = append(sess.env, variable.Name+"="+variable.Value)
	return true
}

func (sess *session) handlePTYRequest(payload []byte) bool {
	var request struct {
		Term                         string
		Columns, Rows, Width, Height uint32
		Modes                        string
	}
	if err := ssh.Unmarshal(payload, &request); err != nil {
		sess.logger.Debug("invalid pty-req", "error", err)
		return false
	}
	if sess.started {
		return false
	}

	sess.pty = &ptyRequest{
		term:   request.Term,
		window: windowSize{request.Columns, request.Rows, request.Width, request.Height},
	}
	return true
}

func (sess *session) handleWindowChange(payload []byte) bool {
	var request struct{ Columns, Rows, Width, Height uint32 }
	if err := ssh.Unmarshal(payload, &request); err != nil {
		sess.logger.Debug("invalid window-change request", "error", err)
		return false
	}
	if sess.pty == nil {
		return false
	}

	sess.pty.window = windowSize{request.Columns, request.Rows, request.Width, request.Height}
	if sess.proc != nil && sess.proc.pty != nil {
		if err := setWindowSize(sess.proc.pty, sess.pty.window); err != nil {
			sess.logger.Debug("failed to resize pty", "error", err)
			return false
		}
	}
	return true
}

func (sess *session) handleSignal(payload []byte) bool {
	var request struct{ Signal string }
	if err := ssh.Unmarshal(payload, &request); err != nil {
		sess.logger.Debug("invalid signal request", "error", err)
		return false
	}

	sig, known := parseSSHSignal(request.Signal)
	if !known || sess.proc == nil {
		sess.logger.Debug("rejected signal request", "signal", request.Signal)
		return false
	}
	// Like OpenSSH, signal the process group that the session leads.
	if err := sess.server.reaper.signalGroup(sess.proc.child, sig); err != nil {
		sess.logger.Debug("failed to deliver signal request", "signal", request.Signal, "error", err)
		return false
	}
	return true
}

// handleStart replies to a shell or exec request and runs argv with the
// server's shell. A session accepts only one of them.
func (sess *session) handleStart(req *ssh.Request, argv []string, kind string) {
	if sess.started {
		_ = req.Reply(false, nil)
		return
	}
	sess.started = true
	// Reply before any output or exit status is sent on the channel.
	_ = req.Reply(true, nil)

	spec := processSpec{
		path: sess.server.shell,
		argv: argv,
		env:  sess.processEnv(),
		dir:  sess.server.sessionDir(),
		pty:  sess.pty,

		credential: sess.server.identity.credential(),
	}

	proc, err := startSessionProcess(sess.server.reaper, spec, sess.channel, sess.channel.Stderr())
	if err != nil {
		code, message := describeSessionStartError(spec, err)
		sess.logger.Error("failed to start session process", "type", kind, "error", err, "exit_status", code)
		sess.finishWithoutProcess(code, message)
		return
	}

	sess.proc = proc
	sess.logger.Info("session started", "type", kind, "pty", sess.pty != nil, "pid", proc.child.pid)
	go proc.copyInput(sess.channel)
	go sess.waitProcess(proc)
}

// sessionDir returns the working directory of SSH sessions: the job's, or
// "/" when the config sets none or the job's is not a directory, as after
// a work_dir that could not be created, so that a developer can still log
// in and look.
func (s *server) sessionDir() string {
	if s.workingDir == "" {
		return "/"
	}
	if info, err := os.Stat(s.workingDir); err != nil || !info.IsDir() {
		s.logger.Warn("the job's working directory is not a directory, so the session starts in /", "working_dir", s.workingDir, "error", err)
		return "/"
	}
	return s.workingDir
}

func describeSessionStartError(spec processSpec, err error) (code uint32, message string) {
	if _, statErr := os.Stat(spec.path); statErr != nil {
		return exitNotFound, fmt.Sprintf("sshrerun: %s not found in this container, so SSH sessions cannot run commands; use an image that contains %s", spec.path, spec.path)
	}
	return exitCannotExecute, fmt.Sprintf("sshrerun: cannot start %s in %s: %v", spec.path, spec.dir, err)
}

// processEnv returns the container's environment with the session's env
// requests, TERM from the pty-req, USER and LOGNAME set to the configured
// user, and HOME=/root if HOME is unset.
func (sess *session) processEnv() []string {
	env := os.Environ()
	for _, variable := range sess.env {
		name, value, _ := strings.Cut(variable, "=")
		env = setEnv(env, name, value)
	}
	if sess.pty != nil && sess.pty.term != "" {
		env = setEnv(env, "TERM", sess.pty.term)
	}
	env = setEnv(env, "USER", sess.server.user)
	env = setEnv(env, "LOGNAME", sess.server.user)
	if _, ok := lookupEnv(env, "HOME"); !ok {
		env = append(env, "HOME=/root")
	}
	return env
}

// waitProcess waits for the process to exit and for its output to drain,
// then sends exit-status or exit-signal and closes the channel.
func (sess *session) waitProcess(proc *sessionProcess) {
	defer close(sess.finished)
	started := time.Now()

	<-proc.child.done
	proc.drainOutput()
	proc.closeFiles()

	status := proc.child.status
	if status.Signaled() {
		sess.logger.Info("session ended", "signal", signalName(status.Signal()), "duration", time.Since(started))
		sess.sendExitSignal(status.Signal(), status.CoreDump())
	} else {
		sess.logger.Info("session ended", "exit_status", status.ExitStatus(), "duration", time.Since(started))
		sess.sendExitStatus(uint32(status.ExitStatus()))
	}
	sess.closeChannel()
}

// finishWithoutProcess writes message to the client's stderr and ends the
// session with exit status code.
func (sess *session) finishWithoutProcess(code uint32, message string) {
	defer close(sess.finished)

	lineEnd := "\n"
	if sess.pty != nil {
		lineEnd = "\r\n"
	}
	_, _ = sess.channel.Stderr().Write([]byte(message + lineEnd))
	sess.sendExitStatus(code)
	sess.closeChannel()
}

func (sess *session) sendExitStatus(code uint32) {
	_, _ = sess.channel.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{code}))
}

func (sess *session) sendExitSignal(sig syscall.Signal, coreDumped bool) {
	payload := struct {
		Signal     string
		CoreDumped bool
		Error      string
		Language   string
	}{Signal: sshSignalName(sig), CoreDumped: coreDumped}
	_, _ = sess.channel.SendRequest("exit-signal", false, ssh.Marshal(payload))
}

func (sess *session) closeChannel() {
	_ = sess.channel.CloseWrite()
	_ = sess.channel.Close()
}

// stopProcess stops a process that is still running after the client
// closed the channel or the connection ended. A process without a pty gets
// SIGKILL on its process group. A pty session gets SIGHUP, as on a terminal
// hangup, and SIGKILL after hangupGracePeriod.
func (sess *session) stopProcess() {
	if !sess.started {
		return
	}
	select {
	case <-sess.finished:
		return
	default:
	}
	if sess.proc == nil {
		<-sess.finished
		return
	}

	reaper := sess.server.reaper
	child := sess.proc.child
	select {
	case <-child.done:
		// The process has exited and waitProcess is draining its output.
		<-sess.finished
		return
	default:
	}

	if sess.proc.pty == nil {
		sess.logger.Info("channel closed before the process exited; killing its process group", "pid", child.pid)
		_ = reaper.signalGroup(child, syscall.SIGKILL)
		<-sess.finished
		return
	}

	sess.logger.Info("channel closed before the process exited; sending SIGHUP to its process group", "pid", child.pid)
	_ = reaper.signalGroup(child, syscall.SIGHUP)
	select {
	case <-sess.finished:
	case <-time.After(hangupGracePeriod):
		sess.logger.Warn("session process ignored SIGHUP; killing its process group", "pid", child.pid)
		_ = reaper.signalGroup(child, syscall.SIGKILL)
		<-sess.finished
	}
}
