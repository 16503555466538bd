//go:build linux

package sshserver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func TestExecReturnsOutputAndExitStatus(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	session.Stdout, session.Stderr = &stdout, &stderr

	err = session.Run("echo hello; exit 3")

	var exitErr *ssh.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, 3, exitErr.ExitStatus())
	assert.Equal(t, "hello\n", stdout.String())
	assert.Empty(t, stderr.String())
}

func TestExecStderrReachesClientStderr(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	session.Stdout, session.Stderr = &stdout, &stderr

	err = session.Run("echo to-stdout; echo to-stderr >&2")

	require.NoError(t, err)
	assert.Equal(t, "to-stdout\n", stdout.String())
	assert.Equal(t, "to-stderr\n", stderr.String())
}

func TestExecOutputIsFullyDrained(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)

	for i := range 20 {
		session, err := client.NewSession()
		require.NoError(t, err)
		output, err := session.Output("echo hi")
		require.NoError(t, err, "run %d", i)
		assert.Equal(t, "hi\n", string(output), "run %d", i)
	}

	session, err := client.NewSession()
	require.NoError(t, err)
	output, err := session.Output("seq 1 50000")
	require.NoError(t, err)
	var want strings.Builder
	for i := 1; i <= 50000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	assert.Equal(t, want.String(), string(output))
}

func TestExecStdinReachesProcess(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	session.Stdin = strings.NewReader("line one\nline two\n")

	output, err := session.Output("cat")

	require.NoError(t, err)
	assert.Equal(t, "line one\nline two\n", string(output))
}

func TestExecEnvironmentAndWorkingDir(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "sleep", "300")
	cfg.WorkingDir = t.TempDir()
	ti := startInit(t, cfg, Options{})
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.Setenv("SSHRERUN_TEST_VAR", "from-client"))

	output, err := session.Output(`echo "$SSHRERUN_TEST_VAR|$USER|$LOGNAME|$TERM"; pwd`)

	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(output)), "\n")
	require.Len(t, lines, 2)
	assert.Equal(t, "from-client|"+testUser+"|"+testUser+"|"+os.Getenv("TERM"), lines[0])
	assert.Equal(t, cfg.WorkingDir, lines[1])
}

func TestExecKilledBySignalSendsExitSignal(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)

	err = session.Run("kill -TERM $$")

	var exitErr *ssh.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, "TERM", exitErr.Signal())
}

func TestSignalRequestReachesProcess(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	stdout, err := session.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, session.Start(`trap 'echo trapped; exit 11' USR1; echo ready; while :; do sleep 0.1; done`))

	buffer := make([]byte, len("ready\n"))
	_, err = stdout.Read(buffer)
	require.NoError(t, err)
	require.Equal(t, "ready\n", string(buffer))
	require.NoError(t, session.Signal(ssh.SIGUSR1))

	rest := make(chan string, 1)
	go func() {
		var output bytes.Buffer
		_, _ = output.ReadFrom(stdout)
		rest <- output.String()
	}()
	assert.Equal(t, 11, exitStatusOf(t, session.Wait()))
	assert.Equal(t, "trapped\n", <-rest)
}

func TestChannelCloseKillsProcessGroup(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	stdout, err := session.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, session.Start("sleep 300 & echo $!; wait"))

	var line []byte
	buffer := make([]byte, 1)
	for !bytes.HasSuffix(line, []byte("\n")) {
		_, err := stdout.Read(buffer)
		require.NoError(t, err)
		line = append(line, buffer[0])
	}
	sleepPID, err := strconv.Atoi(strings.TrimSpace(string(line)))
	require.NoError(t, err)

	require.NoError(t, session.Close())

	waitFor(t, "the background sleep to be killed and reaped", func() bool { return processGone(sleepPID) })
	waitFor(t, "the session end to be logged", func() bool { return strings.Contains(ti.logs.String(), "killing its process group") })
}

func TestMissingShellExitsWith127(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	srv := newTestServer(t, newTestConfig(t, signer.PublicKey(), "true"))
	srv.shell = filepath.Join(t.TempDir(), "no-such-shell")
	address := serveOnLoopback(t, srv)

	client, err := ssh.Dial("tcp", address, clientConfig(testUser, ssh.PublicKeys(signer)))
	require.NoError(t, err)
	defer client.Close()
	session, err := client.NewSession()
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	session.Stdout, session.Stderr = &stdout, &stderr

	err = session.Run("echo never")

	assert.Equal(t, 127, exitStatusOf(t, err))
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), srv.shell+" not found in this container")
}

func TestLoginIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	unknownSigner, _ := newEd25519Signer(t)
	keyboardInteractive := ssh.KeyboardInteractive(
		func(name, instruction string, questions []string, echos []bool) ([]string, error) {
			return make([]string, len(questions)), nil
		})

	tests := []struct {
		name string
		user string
		auth ssh.AuthMethod
		// wantErr is the client's error. After a rejected
		// keyboard-interactive request, the x/crypto client reports the
		// server's failure message as an unexpected message type.
		wantErr string
	}{
		{"unknown key", testUser, ssh.PublicKeys(unknownSigner), "unable to authenticate"},
		{"wrong user", "someone-else", ssh.PublicKeys(signer), "unable to authenticate"},
		{"password", testUser, ssh.Password("secret"), "unable to authenticate"},
		{"keyboard interactive", testUser, keyboardInteractive, "handshake failed"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			config := clientConfig(test.user, test.auth)
			// The server offers only publickey, so the client would skip
			// password and keyboard-interactive. AuthCallback sends the
			// method anyway, once, so that the server has to reject it.
			sent := false
			config.AuthCallback = func(*ssh.ClientAuthContext) (ssh.AuthMethod, error) {
				if sent {
					return nil, nil
				}
				sent = true
				return test.auth, nil
			}

			client, err := ssh.Dial("tcp", ti.address, config)
			if client != nil {
				_ = client.Close()
			}

			require.Error(t, err)
			assert.Contains(t, err.Error(), test.wantErr)
		})
	}

	// The server logs a rejection when the client has given up, which can
	// be after Dial returned.
	waitFor(t, "every rejected login to be logged", func() bool {
		return strings.Count(ti.logs.String(), "login rejected") == len(tests)
	})
	logs := ti.logs.String()
	assert.Contains(t, logs, ssh.FingerprintSHA256(unknownSigner.PublicKey()))
	assert.Contains(t, logs, "user=someone-else")
	assert.Contains(t, logs, `rejected_methods=["password"]`)
	assert.Contains(t, logs, `rejected_methods=["keyboard-interactive"]`)
	assert.NotContains(t, logs, strings.Fields(authorizedLine(unknownSigner.PublicKey()))[1])
	assert.NotContains(t, logs, "secret")
	assert.NotContains(t, logs, "login accepted")
}

func TestLoginAcceptedIsLogged(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)

	ti.login(t, signer)

	waitFor(t, "the accepted login to be logged", func() bool {
		return strings.Contains(ti.logs.String(), "login accepted")
	})
	logs := ti.logs.String()
	assert.Contains(t, logs, ssh.FingerprintSHA256(signer.PublicKey()))
	assert.Contains(t, logs, "user="+testUser)
	assert.NotContains(t, logs, strings.Fields(authorizedLine(signer.PublicKey()))[1])
}

func TestUnsupportedChannelTypeIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)

	// Only a server opens x11, auth-agent@openssh.com and forwarded-tcpip
	// channels, so a client that opens one gets a rejection.
	for _, channelType := range []string{"x11", "auth-agent@openssh.com", "forwarded-tcpip", "unknown@example.com"} {
		t.Run(channelType, func(t *testing.T) {
			_, _, err := client.OpenChannel(channelType, nil)

			var openErr *ssh.OpenChannelError
			require.ErrorAs(t, err, &openErr)
			assert.Equal(t, ssh.UnknownChannelType, openErr.Reason)
		})
	}
}

func TestSecondStartRequestIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.Start("sleep 0.2"))

	accepted, err := session.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"echo again"}))

	require.NoError(t, err)
	assert.False(t, accepted)
	assert.NoError(t, session.Wait())
}

func TestJobExitEndsOpenSessions(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	stopFile := tempPath(t, "stop")
	cfg := newTestConfig(t, signer.PublicKey(), "sh", "-c", `while [ ! -e "$1" ]; do sleep 0.05; done; exit 6`, "job", stopFile)
	ti := startInit(t, cfg, Options{})
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.Start("sleep 300"))

	require.NoError(t, os.WriteFile(stopFile, nil, 0o600))
	result := ti.wait(t)

	assert.Equal(t, 6, result.code)
	assert.NoError(t, result.err)
	sessionDone := make(chan error, 1)
	go func() { sessionDone <- session.Wait() }()
	select {
	case err := <-sessionDone:
		assert.Error(t, err, "the session should end without an exit status")
	case <-time.After(testTimeout):
		t.Fatal("the session did not end after the job exited")
	}
	_, err = ti.dial(testUser, ssh.PublicKeys(signer))
	assert.Error(t, err, "the listener should be closed")
}

func TestBackgroundProcessDoesNotHoldSession(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	started := time.Now()

	// The background sleep inherits the stdout pipe and keeps it open.
	output, err := session.Output("sleep 30 & echo $!")

	require.NoError(t, err)
	sleepPID, err := strconv.Atoi(strings.TrimSpace(string(output)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(sleepPID, syscall.SIGKILL) })
	assert.Less(t, time.Since(started), 10*time.Second, "the session waited for the background process")
}
