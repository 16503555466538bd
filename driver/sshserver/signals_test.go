//go:build linux

package sshserver

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSSHSignalNameUsesRFCNames(t *testing.T) {
	assert.Equal(t, "TERM", sshSignalName(syscall.SIGTERM))
	assert.Equal(t, "USR2", sshSignalName(syscall.SIGUSR2))
	assert.Equal(t, "SIG@openssh.com", sshSignalName(syscall.SIGWINCH))
}

func TestParseSSHSignal(t *testing.T) {
	sig, ok := parseSSHSignal("HUP")
	assert.True(t, ok)
	assert.Equal(t, syscall.SIGHUP, sig)

	_, ok = parseSSHSignal("WINCH")
	assert.False(t, ok)
}

func TestSignalNameForLogs(t *testing.T) {
	assert.Equal(t, "SIGTERM", signalName(syscall.SIGTERM))
}
