//go:build linux

package sshserver

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func TestEventsNeverContainKeys(t *testing.T) {
	signer, clientPrivate := newEd25519Signer(t)
	cfg := newHoldConfig(t, signer, "1m", "sh", "-c", "exit 0")
	ti := startInit(t, cfg, Options{})
	waitForEvent(t, cfg.EventsPath, EventJobExited)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.Run("true"))
	require.NoError(t, client.Close())
	ti.wait(t)

	data, err := os.ReadFile(cfg.EventsPath)
	require.NoError(t, err)
	content := string(data)
	require.Contains(t, content, EventSessionClosed)
	authorizedKeyData := strings.Fields(authorizedLine(signer.PublicKey()))[1]
	assert.NotContains(t, content, authorizedKeyData)
	clientBlock, err := ssh.MarshalPrivateKey(clientPrivate, "")
	require.NoError(t, err)
	for _, line := range privateKeyLines(t, clientBlock) {
		assert.NotContains(t, content, line, "client private key")
	}
	hostBlock, _ := pem.Decode([]byte(cfg.HostKey))
	require.NotNil(t, hostBlock)
	for _, line := range privateKeyLines(t, hostBlock) {
		assert.NotContains(t, content, line, "host private key")
	}
}

// privateKeyLines returns the base64 lines of a PEM block, each long
// enough that it cannot appear in an event by chance.
func privateKeyLines(t *testing.T, block *pem.Block) []string {
	t.Helper()
	var lines []string
	for _, line := range strings.Split(string(pem.EncodeToMemory(block)), "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			lines = append(lines, line)
		}
	}
	require.NotEmpty(t, lines)
	return lines
}

func TestEventFileIsAppended(t *testing.T) {
	path := tempPath(t, "events.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("{\"type\":\"earlier\"}\n"), 0o600))
	events := openEventLog(path, hclog.NewNullLogger())
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

	events.write(Event{Time: when, Type: EventHoldEnded, Reason: "the last SSH session closed"})
	events.close()

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "{\"type\":\"earlier\"}\n"+
		`{"time":"2024-05-06T07:08:09.123456789Z","type":"hold_ended","reason":"the last SSH session closed"}`+"\n", string(data))
}

func TestEventFileIsCreatedWithMode0600(t *testing.T) {
	path := tempPath(t, "events.jsonl")
	events := openEventLog(path, hclog.NewNullLogger())
	defer events.close()

	info, err := os.Stat(path)

	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestJobExitedEventKeepsExitCodeZero(t *testing.T) {
	event := jobExitedEvent(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), 0, nil)

	events := &eventLog{path: tempPath(t, "events.jsonl"), logger: hclog.NewNullLogger()}
	events.write(event)
	events.close()
	data, err := os.ReadFile(events.path)

	require.NoError(t, err)
	assert.Equal(t, `{"time":"2024-01-02T03:04:05Z","type":"job_exited","exit_code":0}`+"\n", string(data))
}

func TestEventWriteFailureWarnsOnce(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	path := filepath.Join(t.TempDir(), "missing-directory", "events.jsonl")
	cfg := newTestConfig(t, signer.PublicKey(), "sleep", "300")
	cfg.EventsPath = path
	ti := startInit(t, cfg, Options{})

	for range 2 {
		client := ti.login(t, signer)
		require.NoError(t, client.Close())
	}
	waitFor(t, "both connections to close", func() bool {
		return strings.Count(ti.logs.String(), "connection closed") == 2
	})

	logs := ti.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "[WARN]"), "logs:\n%s", logs)
	assert.Contains(t, logs, "cannot open the event file; retrying at the next event")
	assert.Contains(t, logs, "path="+path)
	assert.Contains(t, logs, "cannot open the event file; the event is lost")
	assert.False(t, ti.returned(), "a failed event write must not end the init")
}

func TestEventWriteRetriesOpen(t *testing.T) {
	directory := filepath.Join(t.TempDir(), "events")
	path := filepath.Join(directory, "events.jsonl")
	events := openEventLog(path, hclog.NewNullLogger())
	defer events.close()

	require.NoError(t, os.Mkdir(directory, 0o700))
	events.write(Event{Time: time.Now(), Type: EventHoldEnded, Reason: "received SIGTERM"})

	got := readEvents(t, path)
	require.Len(t, got, 1)
	assert.Equal(t, "received SIGTERM", got[0].Reason)
}

func TestNilEventLogWritesNothing(t *testing.T) {
	var events *eventLog

	assert.NotPanics(t, func() {
		events.write(Event{Type: EventJobExited})
		events.close()
	})
	assert.Nil(t, openEventLog("", hclog.NewNullLogger()))
}

func TestFormatEventDurationRoundsToMilliseconds(t *testing.T) {
	assert.Equal(t, "1m2.5s", formatEventDuration(62*time.Second+500*time.Millisecond+400*time.Microsecond))
}
