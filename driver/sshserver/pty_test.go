//go:build linux

package sshserver

import (
	"bytes"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

const testTerm = "xterm-sshrerun-test"

func TestPTYShellUsesTermAndExitStatus(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	var output bytes.Buffer
	session.Stdout = &output
	stdin, err := session.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, session.RequestPty(testTerm, 24, 80, ssh.TerminalModes{}))
	require.NoError(t, session.Shell())

	// Session.WindowChange does not ask for a reply. Asking for one makes
	// sure that the pty is resized before the shell reads the commands.
	resized, err := session.SendRequest("window-change", true, ssh.Marshal(struct{ Columns, Rows, Width, Height uint32 }{132, 50, 0, 0}))
	require.NoError(t, err)
	require.True(t, resized)
	_, err = stdin.Write([]byte("stty size; echo \"term=$TERM\"; exit 7\n"))
	require.NoError(t, err)

	assert.Equal(t, 7, exitStatusOf(t, session.Wait()))
	// The terminal echoes the typed line, which contains $TERM but not its
	// value, so the value can only come from the echo command.
	assert.Contains(t, output.String(), "term="+testTerm)
	assert.Contains(t, output.String(), "50 132")
}

func TestPTYExecHasControllingTerminal(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.RequestPty(testTerm, 30, 100, ssh.TerminalModes{}))

	output, err := session.Output("tty; stty size; echo \"$TERM\" >&2; exit 4")

	assert.Equal(t, 4, exitStatusOf(t, err))
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(output), "\r", "")), "\n")
	require.Len(t, lines, 3, "output: %q", output)
	assert.True(t, strings.HasPrefix(lines[0], "/dev/pts/"), "tty printed %q", lines[0])
	assert.Equal(t, "30 100", lines[1])
	// With a pty, stderr is the terminal too, so it arrives as stdout.
	assert.Equal(t, testTerm, lines[2])
}

func TestPTYChannelCloseHangsUpShell(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	stdout, err := session.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, session.RequestPty(testTerm, 24, 80, ssh.TerminalModes{}))
	require.NoError(t, session.Start("echo started; sleep 300"))

	buffer := make([]byte, len("started"))
	_, err = stdout.Read(buffer)
	require.NoError(t, err)
	require.Equal(t, "started", string(buffer))

	require.NoError(t, session.Close())

	waitFor(t, "the pty session to end after SIGHUP", func() bool {
		logs := ti.logs.String()
		return strings.Contains(logs, "sending SIGHUP to its process group") && strings.Contains(logs, "session ended")
	})
	assert.NotContains(t, ti.logs.String(), "ignored SIGHUP")
}

func TestPTYBackgroundProcessDoesNotHoldSession(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.RequestPty(testTerm, 24, 80, ssh.TerminalModes{}))
	started := time.Now()

	// The sleep inherits the ignored SIGHUP, so it survives the hangup that
	// the kernel sends when the shell exits. It keeps the terminal open, so
	// the master never reports EIO.
	output, err := session.Output("trap '' HUP; sleep 30 & echo $!")

	require.NoError(t, err)
	sleepPID, err := strconv.Atoi(strings.TrimSpace(string(output)))
	require.NoError(t, err, "output: %q", output)
	t.Cleanup(func() { _ = syscall.Kill(sleepPID, syscall.SIGKILL) })
	assert.Less(t, time.Since(started), 10*time.Second, "the session waited for the background process")
	assert.False(t, processGone(sleepPID), "the background sleep should still run")
}
