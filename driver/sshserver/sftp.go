package sshserver

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sftpSubsystem is the only subsystem the server offers. OpenSSH's sftp
// uses it, and so does scp since OpenSSH 9.0.
const sftpSubsystem = "sftp"

// handleSubsystem replies to a subsystem request and serves SFTP on the
// channel. A session accepts only one shell, exec or subsystem request.
func (sess *session) handleSubsystem(req *ssh.Request) {
	var payload struct{ Name string }
	if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
		sess.logger.Debug("invalid subsystem request", "error", err)
		_ = req.Reply(false, nil)
		return
	}
	if sess.started || payload.Name != sftpSubsystem {
		sess.logger.Debug("rejected subsystem request", "subsystem", payload.Name)
		_ = req.Reply(false, nil)
		return
	}

	sess.started = true
	// Reply before the SFTP server sends its first packet on the channel.
	_ = req.Reply(true, nil)
	if sess.server.identity != nil {
		sess.startSFTPProcess()
		return
	}
	go sess.serveSFTP()
}

// sftpServerFlag makes the init serve SFTP on its stdin and stdout instead
// of running a job. The init starts itself that way as the container user,
// so that the files of an SFTP session have that user's owner and access.
const sftpServerFlag = "sftp-server"

// selfPath is the init's own executable inside the container.
const selfPath = "/proc/self/exe"

// startSFTPProcess serves SFTP from a copy of the init that runs as the
// container user, connected to the channel as an exec session would be.
func (sess *session) startSFTPProcess() {
	dir := sess.server.sessionDir()
	spec := processSpec{
		path:       selfPath,
		argv:       []string{"sshrerun-init", Subcommand, "-" + sftpServerFlag, dir},
		env:        sess.processEnv(),
		dir:        dir,
		credential: sess.server.identity.credential(),
	}
	proc, err := startSessionProcess(sess.server.reaper, spec, sess.channel, sess.channel.Stderr())
	if err != nil {
		sess.logger.Error("failed to start the SFTP server as the container user", "error", err)
		sess.finishWithoutProcess(exitCannotExecute, fmt.Sprintf("sshrerun: cannot start the SFTP server: %v", err))
		return
	}

	sess.proc = proc
	sess.logger.Info("session started", "type", "sftp", "working_dir", dir, "pid", proc.child.pid)
	go proc.copyInput(sess.channel)
	go sess.waitProcess(proc)
}

// serveSFTPOnStdio serves one SFTP session on stdin and stdout, in dir, and
// returns the exit code of the process.
func serveSFTPOnStdio(dir string, stderr io.Writer) int {
	channel := struct {
		io.Reader
		io.WriteCloser
	}{os.Stdin, os.Stdout}
	server, err := sftp.NewServer(channel, sftp.WithServerWorkingDirectory(dir))
	if err != nil {
		fmt.Fprintf(stderr, "sshrerun: cannot start the SFTP server: %v\n", err)
		return 1
	}
	if err := server.Serve(); err != nil {
		fmt.Fprintf(stderr, "sshrerun: SFTP session failed: %v\n", err)
		return 1
	}
	return 0
}

// serveSFTP serves SFTP until the client closes the channel, then sends
// the exit status and closes the channel.
//
// Without run_as, the SFTP server runs in the init process, which runs as
// the container user, so it has that user's permissions, as a shell would. Relative paths start at the
// session's working directory, which is also what the client gets as its
// home directory. So it works without /etc/passwd or HOME.
func (sess *session) serveSFTP() {
	defer close(sess.finished)
	started := time.Now()
	dir := sess.server.sessionDir()

	server, err := sftp.NewServer(sess.channel, sftp.WithServerWorkingDirectory(dir))
	if err != nil {
		sess.logger.Error("failed to start SFTP server", "error", err)
		sess.sendExitStatus(1)
		sess.closeChannel()
		return
	}
	sess.logger.Info("session started", "type", "sftp", "working_dir", dir)

	// Serve returns at EOF from the client and closes the files it opened.
	// server.Close is not called, because it closes the channel, and the
	// exit status must go out first: OpenSSH's ssh exits with 255 without
	// one, and scp then reports a failure.
	var status uint32
	if err := server.Serve(); err != nil {
		sess.logger.Warn("SFTP session failed", "error", err)
		status = 1
	}

	sess.logger.Info("session ended", "type", "sftp", "exit_status", status, "duration", time.Since(started))
	sess.sendExitStatus(status)
	sess.closeChannel()
}
