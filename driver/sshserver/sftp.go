package sshserver

import (
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
	go sess.serveSFTP()
}

// serveSFTP serves SFTP until the client closes the channel, then sends
// the exit status and closes the channel.
//
// The SFTP server runs in the init process, so it has the container
// user's permissions, as a shell would. Relative paths start at the
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
