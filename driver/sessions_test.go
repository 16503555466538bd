package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

type recordedEvent struct {
	message string
	details map[string]string
}

func newTestTailer(t *testing.T) (*sessionEventTailer, *[]recordedEvent, string) {
	t.Helper()
	taskDir := t.TempDir()
	require.NoError(t, os.MkdirAll(eventsHostDir(taskDir), 0o700))
	var events []recordedEvent
	tailer := newSessionEventTailer(taskDir, func(message string, details map[string]string) {
		events = append(events, recordedEvent{message, details})
	}, hclog.NewNullLogger())
	return tailer, &events, filepath.Join(eventsHostDir(taskDir), eventsFileName)
}

func TestSessionEvents_Messages(t *testing.T) {
	tailer, events, path := newTestTailer(t)
	lines := `{"time":"2026-01-02T03:04:05Z","type":"session_opened","session_id":"a1","user":"root","key_fingerprint":"SHA256:abc","remote_addr":"203.0.113.5:5000"}
{"time":"2026-01-02T03:05:05Z","type":"session_closed","session_id":"a1","user":"root","key_fingerprint":"SHA256:abc","remote_addr":"203.0.113.5:5000","duration":"1m0s"}
{"time":"2026-01-02T03:06:05Z","type":"job_exited","exit_code":3,"hold_until":"2026-01-02T03:16:05Z"}
{"time":"2026-01-02T03:16:05Z","type":"hold_ended","reason":"no SSH connection within 10m0s"}
`
	require.NoError(t, os.WriteFile(path, []byte(lines), 0o600))
	tailer.readFrom(0)

	require.Len(t, *events, 4)
	require.Equal(t, "SSH session opened by root from 203.0.113.5:5000 with key SHA256:abc", (*events)[0].message)
	require.Equal(t, "SHA256:abc", (*events)[0].details["key_fingerprint"])
	require.Equal(t, "SSH session of root from 203.0.113.5:5000 closed after 1m0s", (*events)[1].message)
	require.Equal(t, "The job's command exited with code 3; SSH stays open for a first connection until 2026-01-02T03:16:05Z, and while sessions are open", (*events)[2].message)
	require.Equal(t, "3", (*events)[2].details["exit_code"])
	require.Equal(t, "SSH closed: no SSH connection within 10m0s", (*events)[3].message)
}

func TestSessionEvents_PartialLineWaits(t *testing.T) {
	tailer, events, path := newTestTailer(t)
	require.NoError(t, os.WriteFile(path, []byte(`{"type":"hold_ended","reason":"x"}`+"\n"+`{"type":"hold_`), 0o600))
	offset := tailer.readFrom(0)
	require.Len(t, *events, 1)

	// the rest of the line arrives later
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`ended","reason":"y"}` + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	tailer.readFrom(offset)
	require.Len(t, *events, 2)
	require.Equal(t, "SSH closed: y", (*events)[1].message)
}

func TestSessionEvents_ResumeRepeatsNothing(t *testing.T) {
	tailer, events, path := newTestTailer(t)
	require.NoError(t, os.WriteFile(path, []byte(`{"type":"hold_ended","reason":"first"}`+"\n"), 0o600))

	// the tailer stops when the container exits
	exited := make(chan struct{})
	close(exited)
	tailer.run(context.Background(), exited)
	require.Len(t, *events, 1)

	// a new tailer after a restart starts after the saved position
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"type":"hold_ended","reason":"second"}` + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	again := *tailer
	var resumed []string
	again.emit = func(message string, _ map[string]string) { resumed = append(resumed, message) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	again.run(ctx, exited)
	require.Equal(t, []string{"SSH closed: second"}, resumed)
}

func TestSessionEvents_SymlinkIgnored(t *testing.T) {
	tailer, events, path := newTestTailer(t)
	target := filepath.Join(t.TempDir(), "host-file")
	require.NoError(t, os.WriteFile(target, []byte(`{"type":"hold_ended","reason":"from a host file"}`+"\n"), 0o600))
	require.NoError(t, os.Symlink(target, path))

	require.Equal(t, int64(0), tailer.readFrom(0))
	require.Empty(t, *events)
}

func TestSessionEvents_OverlongLineDropped(t *testing.T) {
	tailer, events, path := newTestTailer(t)
	long := `{"type":"hold_ended","reason":"` + strings.Repeat("x", maxEventLine) + `"}` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(long+`{"type":"hold_ended","reason":"short"}`+"\n"), 0o600))

	tailer.readFrom(0)
	require.Len(t, *events, 1)
	require.Equal(t, "SSH closed: short", (*events)[0].message)
}

// The ssh command is sent again after every readyRepeatAfter session
// events, so that it stays among the last 10 events that Nomad keeps.
// Other events do not count, and once SSH has closed it is not sent again.
func TestSessionEvents_ReadyRepeats(t *testing.T) {
	var messages []string
	var readies []string
	h := &taskHandle{state: TaskState{SSH: &SSHState{Host: "203.0.113.5", Port: 64535, User: "root"}}}
	h.emitReady = func(state *SSHState) { readies = append(readies, SSHCommand(state)) }
	emit := h.withReadyRepeats(func(message string, _ map[string]string) { messages = append(messages, message) })
	event := func(kind string) { emit("SSH event "+kind, map[string]string{"ssh_event": kind}) }

	for i := 0; i < readyRepeatAfter-1; i++ {
		event(sshserver.EventSessionOpened)
	}
	event(sshserver.EventJobExited)
	require.Empty(t, readies, "an event other than a session event counted")

	event(sshserver.EventSessionClosed)
	require.Equal(t, []string{"ssh -p 64535 root@203.0.113.5"}, readies)

	for i := 0; i < readyRepeatAfter-1; i++ {
		event(sshserver.EventSessionOpened)
	}
	event(sshserver.EventHoldEnded)
	event(sshserver.EventSessionClosed)
	require.Len(t, readies, 1, "the ssh command was sent after SSH closed")
	require.Len(t, messages, 2*readyRepeatAfter+2)
}
