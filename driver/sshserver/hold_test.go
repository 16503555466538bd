//go:build linux

package sshserver

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// holdLogMessage is the log line that starts a hold.
const holdLogMessage = "holding the container open for SSH after the job exited"

// newHoldConfig returns a config that accepts signer, runs command and
// writes events to a temporary file, with the given hold window.
func newHoldConfig(t *testing.T, signer ssh.Signer, wait string, command ...string) *Config {
	t.Helper()
	cfg := newTestConfig(t, signer.PublicKey(), command...)
	cfg.WaitForConnection = wait
	cfg.EventsPath = tempPath(t, "events.jsonl")
	return cfg
}

func TestHoldEndsWithoutConnection(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "500ms", "sh", "-c", "exit 5")
	started := time.Now()
	ti := startInit(t, cfg, Options{})

	result := ti.wait(t)
	elapsed := time.Since(started)

	assert.NoError(t, result.err)
	assert.Equal(t, 5, result.code)
	assert.GreaterOrEqual(t, elapsed, 500*time.Millisecond, "Run returned before the hold window passed")
	assert.Less(t, elapsed, 10*time.Second)

	events := readEvents(t, cfg.EventsPath)
	require.Equal(t, []string{EventJobExited, EventHoldEnded}, eventTypes(events))
	require.NotNil(t, events[0].ExitCode)
	assert.Equal(t, 5, *events[0].ExitCode)
	assert.NotEmpty(t, events[0].HoldUntil)
	_, err := time.Parse(time.RFC3339, events[0].HoldUntil)
	assert.NoError(t, err, "hold_until must be RFC 3339")
	assert.Equal(t, "no SSH connection within 500ms", events[1].Reason)

	logs := ti.logs.String()
	assert.Contains(t, logs, holdLogMessage)
	assert.Contains(t, logs, `SSH hold ended: reason="no SSH connection within 500ms"`)
}

func TestHoldEndsWhenSessionCloses(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "1m", "sh", "-c", "exit 3")
	ti := startInit(t, cfg, Options{})
	waitForEvent(t, cfg.EventsPath, EventJobExited)

	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	output, err := session.Output("echo after the job")
	require.NoError(t, err)
	assert.Equal(t, "after the job\n", string(output))
	assert.False(t, ti.returned(), "Run returned while a session was open")
	require.NoError(t, client.Close())
	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 3, result.code)
	events := readEvents(t, cfg.EventsPath)
	require.Equal(t, []string{EventJobExited, EventSessionOpened, EventSessionClosed, EventHoldEnded}, eventTypes(events))
	opened, closed := events[1], events[2]
	assert.Len(t, opened.SessionID, 2*sessionIDBytes)
	assert.Equal(t, opened.SessionID, closed.SessionID)
	assert.Equal(t, testUser, opened.User)
	assert.Equal(t, ssh.FingerprintSHA256(signer.PublicKey()), opened.KeyFingerprint)
	assert.True(t, strings.HasPrefix(opened.RemoteAddr, "127.0.0.1:"), "remote_addr %q", opened.RemoteAddr)
	assert.Empty(t, opened.Duration)
	duration, err := time.ParseDuration(closed.Duration)
	require.NoError(t, err, "duration %q", closed.Duration)
	assert.Positive(t, duration)
	assert.Equal(t, "the last SSH session closed", events[3].Reason)
}

func TestHoldWaitsForSessionOpenAtJobExit(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	stopFile := tempPath(t, "stop")
	const window = 300 * time.Millisecond
	cfg := newHoldConfig(t, signer, window.String(), "sh", "-c", `while [ ! -e "$1" ]; do sleep 0.05; done; exit 6`, "job", stopFile)
	ti := startInit(t, cfg, Options{})
	client := ti.login(t, signer)

	require.NoError(t, os.WriteFile(stopFile, nil, 0o600))
	waitForEvent(t, cfg.EventsPath, EventJobExited)
	// Without the open session, the hold would end when the window passes.
	time.Sleep(2 * window)
	stillUp := !ti.returned()
	session, err := client.NewSession()
	require.NoError(t, err)
	output, err := session.Output("echo still here")

	assert.True(t, stillUp, "Run returned while a session was open")
	require.NoError(t, err)
	assert.Equal(t, "still here\n", string(output))
	require.NoError(t, client.Close())
	result := ti.wait(t)
	assert.Equal(t, 6, result.code)
	assert.NoError(t, result.err)
	hold := findEvent(readEvents(t, cfg.EventsPath), EventHoldEnded)
	require.NotNil(t, hold)
	assert.Equal(t, "the last SSH session closed", hold.Reason)
}

func TestHoldEndsWhenMaxSessionPasses(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "1m", "sh", "-c", "exit 2")
	cfg.MaxSession = "1s"
	ti := startInit(t, cfg, Options{})
	waitForEvent(t, cfg.EventsPath, EventJobExited)
	// The server starts the max_session clock during the login, so after
	// this time.
	beforeLogin := time.Now()
	client := ti.login(t, signer)

	connectionClosed := make(chan error, 1)
	go func() { connectionClosed <- client.Wait() }()
	select {
	case <-connectionClosed:
	case <-time.After(testTimeout):
		t.Fatal("the server did not close the connection after max_session")
	}
	result := ti.wait(t)

	assert.GreaterOrEqual(t, time.Since(beforeLogin), time.Second, "the connection closed before max_session passed")
	assert.NoError(t, result.err)
	assert.Equal(t, 2, result.code)
	events := readEvents(t, cfg.EventsPath)
	hold := findEvent(events, EventHoldEnded)
	require.NotNil(t, hold)
	assert.Equal(t, "max_session 1s passed", hold.Reason)
	assert.NotNil(t, findEvent(events, EventSessionClosed))
}

func TestMaxSessionClosesConnectionsWhileJobRuns(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "sleep", "300")
	cfg.MaxSession = "500ms"
	ti := startInit(t, cfg, Options{})
	client := ti.login(t, signer)

	connectionClosed := make(chan error, 1)
	go func() { connectionClosed <- client.Wait() }()
	select {
	case <-connectionClosed:
	case <-time.After(testTimeout):
		t.Fatal("the server did not close the connection after max_session")
	}
	var banner string
	config := clientConfig(testUser, ssh.PublicKeys(signer))
	config.BannerCallback = func(message string) error {
		banner = message
		return nil
	}
	_, err := ssh.Dial("tcp", ti.address, config)

	assert.Error(t, err, "a login after max_session must be rejected")
	assert.Contains(t, banner, "max_session 500ms passed")
	assert.False(t, ti.returned(), "the job must go on after max_session")
	assert.Contains(t, ti.logs.String(), "max_session passed; closing SSH connections")
}

func TestHoldEndsOnSignal(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "1m", "sh", "-c", "exit 4")
	signals := make(chan os.Signal, 1)
	ti := startInit(t, cfg, Options{Signals: signals})
	waitFor(t, "the hold to start", func() bool { return strings.Contains(ti.logs.String(), holdLogMessage) })

	signals <- syscall.SIGTERM
	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 4, result.code)
	hold := findEvent(readEvents(t, cfg.EventsPath), EventHoldEnded)
	require.NotNil(t, hold)
	assert.Equal(t, "received SIGTERM", hold.Reason)
	assert.NotContains(t, ti.logs.String(), "forwarded signal to job")
}

func TestHoldEndsOnSignalWithSessionOpen(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "1m", "sh", "-c", "exit 4")
	signals := make(chan os.Signal, 1)
	ti := startInit(t, cfg, Options{Signals: signals})
	waitForEvent(t, cfg.EventsPath, EventJobExited)
	client := ti.login(t, signer)
	waitForEvent(t, cfg.EventsPath, EventSessionOpened)

	signals <- syscall.SIGINT
	result := ti.wait(t)

	assert.Equal(t, 4, result.code)
	assert.Error(t, client.Wait(), "the connection should be closed")
	hold := findEvent(readEvents(t, cfg.EventsPath), EventHoldEnded)
	require.NotNil(t, hold)
	assert.Equal(t, "received SIGINT", hold.Reason)
}

// A stop signal that ends the running job, as Nomad's kill_signal does,
// ends the init with the job's exit code, without a hold.
func TestNoHoldAfterStopSignal(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "1h", "sh", "-c", "trap 'exit 143' TERM; while :; do sleep 0.05; done")
	signals := make(chan os.Signal, 1)
	ti := startInit(t, cfg, Options{Signals: signals})
	waitFor(t, "the job to start", func() bool { return strings.Contains(ti.logs.String(), "job started") })

	signals <- syscall.SIGTERM
	result := ti.wait(t)

	assert.Equal(t, 143, result.code)
	assert.NotContains(t, ti.logs.String(), holdLogMessage)
	assert.Contains(t, ti.logs.String(), `no SSH hold, because the job was stopped: signal=SIGTERM`)
	events := readEvents(t, cfg.EventsPath)
	require.Equal(t, []string{EventJobExited}, eventTypes(events))
	assert.Empty(t, events[0].HoldUntil)
}

// A signal that does not ask for a stop, such as one that `nomad alloc
// signal` sends for the job, keeps the hold.
func TestHoldAfterOtherSignal(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "300ms", "sh", "-c", "trap 'exit 3' USR1; while :; do sleep 0.05; done")
	signals := make(chan os.Signal, 1)
	ti := startInit(t, cfg, Options{Signals: signals})
	waitFor(t, "the job to start", func() bool { return strings.Contains(ti.logs.String(), "job started") })

	signals <- syscall.SIGUSR1
	result := ti.wait(t)

	assert.Equal(t, 3, result.code)
	assert.Contains(t, ti.logs.String(), holdLogMessage)
}

func TestNoHoldWithZeroWait(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "0s", "sh", "-c", "exit 5")
	cfg.MaxSession = "1h"
	ti := startInit(t, cfg, Options{})

	result := ti.wait(t)

	assert.Equal(t, 5, result.code)
	assert.NotContains(t, ti.logs.String(), holdLogMessage)
	events := readEvents(t, cfg.EventsPath)
	require.Equal(t, []string{EventJobExited}, eventTypes(events))
	assert.Empty(t, events[0].HoldUntil)
}

func TestNoHoldWithoutSSH(t *testing.T) {
	// The wait is longer than ti.wait waits, so Run returns in time only
	// without a hold.
	cfg := newConfigWithoutSSH("sh", "-c", "exit 5")
	cfg.WaitForConnection = "10m"
	cfg.EventsPath = tempPath(t, "events.jsonl")
	ti := startInit(t, cfg, Options{})

	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 5, result.code)
	assert.NotContains(t, ti.logs.String(), holdLogMessage)
	events := readEvents(t, cfg.EventsPath)
	require.Equal(t, []string{EventJobExited}, eventTypes(events))
	require.NotNil(t, events[0].ExitCode)
	assert.Equal(t, 5, *events[0].ExitCode)
	assert.Empty(t, events[0].HoldUntil)
}

func TestHoldFollowsJobStartFailure(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "300ms", "no-such-command-sshrerun")
	ti := startInit(t, cfg, Options{})

	result := ti.wait(t)

	assert.Equal(t, 127, result.code)
	require.Error(t, result.err)
	assert.Contains(t, result.err.Error(), "not found in PATH")
	events := readEvents(t, cfg.EventsPath)
	require.Equal(t, []string{EventJobExited, EventHoldEnded}, eventTypes(events))
	require.NotNil(t, events[0].ExitCode)
	assert.Equal(t, 127, *events[0].ExitCode)
	assert.NotEmpty(t, events[0].HoldUntil)
}

func TestHoldEndsWhenContextIsCanceled(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "1m", "sh", "-c", "exit 8")
	ti := startInit(t, cfg, Options{})
	waitFor(t, "the hold to start", func() bool { return strings.Contains(ti.logs.String(), holdLogMessage) })

	ti.cancel()
	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 8, result.code)
	hold := findEvent(readEvents(t, cfg.EventsPath), EventHoldEnded)
	require.NotNil(t, hold)
	assert.Equal(t, "the init was canceled", hold.Reason)
}
