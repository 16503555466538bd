//go:build linux

package sshserver

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunReturnsJobExitCode(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		want    int
	}{
		{"exit 0", []string{"true"}, 0},
		{"exit 5", []string{"sh", "-c", "exit 5"}, 5},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL)},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			signer, _ := newEd25519Signer(t)
			ti := startInit(t, newTestConfig(t, signer.PublicKey(), test.command...), Options{})

			result := ti.wait(t)

			assert.NoError(t, result.err)
			assert.Equal(t, test.want, result.code)
			assert.Contains(t, ti.logs.String(), "job exited")
		})
	}
}

func TestRunForwardsSignalToJob(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	directory := t.TempDir()
	readyFile := directory + "/ready"
	gotFile := directory + "/got"
	script := `trap 'echo got > "$2"; exit 9' USR1; echo > "$1"; while :; do sleep 0.1; done`
	cfg := newTestConfig(t, signer.PublicKey(), "sh", "-c", script, "job", readyFile, gotFile)
	signals := make(chan os.Signal, 1)
	ti := startInit(t, cfg, Options{Signals: signals})

	// Until the trap is set, USR1 would kill the shell.
	waitFor(t, "the job to set its trap", func() bool {
		_, err := os.Stat(readyFile)
		return err == nil
	})
	signals <- syscall.SIGUSR1
	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 9, result.code)
	content, err := os.ReadFile(gotFile)
	require.NoError(t, err)
	assert.Equal(t, "got\n", string(content))
	assert.Contains(t, ti.logs.String(), "forwarded signal to job")
}

func TestRunMissingCommandReturns127(t *testing.T) {
	tests := []struct {
		name    string
		command string
		want    string
	}{
		{"name not in PATH", "no-such-command-sshrerun", `command "no-such-command-sshrerun" not found in PATH`},
		{"absolute path", "/nonexistent/sshrerun/tool", `command "/nonexistent/sshrerun/tool" not found`},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			signer, _ := newEd25519Signer(t)
			ti := startInit(t, newTestConfig(t, signer.PublicKey(), test.command), Options{})

			result := ti.wait(t)

			assert.Equal(t, 127, result.code)
			require.Error(t, result.err)
			assert.Contains(t, result.err.Error(), test.want)
		})
	}
}

func TestRunNonExecutableCommandReturns126(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	path := tempPath(t, "not-executable")
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o644))
	ti := startInit(t, newTestConfig(t, signer.PublicKey(), path), Options{})

	result := ti.wait(t)

	assert.Equal(t, 126, result.code)
	require.Error(t, result.err)
	assert.Contains(t, result.err.Error(), "cannot be executed")
	assert.ErrorIs(t, result.err, os.ErrPermission)
}

func TestRunMissingWorkingDirReturns126(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "true")
	cfg.WorkingDir = tempPath(t, "missing")
	ti := startInit(t, cfg, Options{})

	result := ti.wait(t)

	assert.Equal(t, 126, result.code)
	require.Error(t, result.err)
	assert.Contains(t, result.err.Error(), "working directory")
	assert.Contains(t, result.err.Error(), cfg.WorkingDir)
}

func TestRunCanceledKillsJob(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "sleep", "300")
	ctx, cancel := context.WithCancel(context.Background())
	listener := loopbackListener(t)
	result := make(chan runResult, 1)
	go func() {
		code, err := Run(ctx, cfg, hclog.NewNullLogger(), Options{Listener: listener})
		result <- runResult{code, err}
	}()

	cancel()

	select {
	case got := <-result:
		assert.Equal(t, 128+int(syscall.SIGKILL), got.code)
		assert.ErrorIs(t, got.err, context.Canceled)
	case <-time.After(testTimeout):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	code, err := Run(context.Background(), &Config{}, hclog.NewNullLogger(), Options{})

	assert.Equal(t, 125, code)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "command is empty")
}

func TestRunWithoutSSHReturnsJobExitCode(t *testing.T) {
	ti := startInit(t, newConfigWithoutSSH("sh", "-c", "exit 4"), Options{})

	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 4, result.code)
	assert.Contains(t, ti.logs.String(), "SSH is disabled because listen_address is empty")
	assert.NotContains(t, ti.logs.String(), "listening for SSH connections")
}

func TestRunWithoutSSHOpensNoListener(t *testing.T) {
	directory := t.TempDir()
	readyFile := directory + "/ready"
	doneFile := directory + "/done"
	script := `echo > "$1"; while [ ! -e "$2" ]; do sleep 0.05; done; exit 4`
	before := listeningTCPSockets(t)
	ti := startInit(t, newConfigWithoutSSH("sh", "-c", script, "job", readyFile, doneFile), Options{})

	waitFor(t, "the job to start", func() bool { return fileExists(readyFile) })
	during := listeningTCPSockets(t)
	require.NoError(t, os.WriteFile(doneFile, nil, 0o600))
	result := ti.wait(t)

	assert.Equal(t, before, during, "listening TCP sockets before Run and while the job runs")
	assert.NoError(t, result.err)
	assert.Equal(t, 4, result.code)
}

func TestRunWithoutSSHForwardsSignalToJob(t *testing.T) {
	directory := t.TempDir()
	readyFile := directory + "/ready"
	script := `trap 'exit 9' USR1; echo > "$1"; while :; do sleep 0.1; done`
	signals := make(chan os.Signal, 1)
	ti := startInit(t, newConfigWithoutSSH("sh", "-c", script, "job", readyFile), Options{Signals: signals})

	// Until the trap is set, USR1 would kill the shell.
	waitFor(t, "the job to set its trap", func() bool { return fileExists(readyFile) })
	signals <- syscall.SIGUSR1
	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 9, result.code)
	assert.Contains(t, ti.logs.String(), "forwarded signal to job")
}

func TestListeningTCPSocketsCountsLoopbackListener(t *testing.T) {
	before := listeningTCPSockets(t)

	listener := loopbackListener(t)
	during := listeningTCPSockets(t)
	require.NoError(t, listener.Close())
	after := listeningTCPSockets(t)

	assert.Equal(t, before+1, during)
	assert.Equal(t, before, after)
}
