package sshserver

import (
	"encoding/json"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Types of Event. A session is one authenticated SSH connection (a login),
// which can carry any number of channels.
const (
	EventSessionOpened = "session_opened"
	EventSessionClosed = "session_closed"
	EventJobExited     = "job_exited"
	EventHoldEnded     = "hold_ended"
)

// Event is one line of the event file at Config.EventsPath. The driver
// reads the file from the host and turns each line into a Nomad task
// event. Events never contain key material or session content.
type Event struct {
	// Time is when the event happened. encoding/json writes it in RFC 3339
	// format with nanoseconds.
	Time time.Time `json:"time"`
	Type string    `json:"type"`

	// Fields of session_opened and session_closed.
	SessionID      string `json:"session_id,omitempty"`      // random hex ID of the login, also in the init's logs
	User           string `json:"user,omitempty"`            // login name
	KeyFingerprint string `json:"key_fingerprint,omitempty"` // ssh.FingerprintSHA256 of the login key
	RemoteAddr     string `json:"remote_addr,omitempty"`     // client host:port
	Duration       string `json:"duration,omitempty"`        // session_closed only, rounded to milliseconds

	// Fields of job_exited. HoldUntil is in RFC 3339 format and is set only
	// with a hold: it is when the hold ends if no SSH session is open then.
	ExitCode  *int   `json:"exit_code,omitempty"`
	HoldUntil string `json:"hold_until,omitempty"`

	// Reason is the cause that ended the hold, in hold_ended only.
	Reason string `json:"reason,omitempty"`
}

// eventFileMode keeps the file private to the container's user, because it
// lists who logged in and from where.
const eventFileMode = 0o600

// eventLog appends events to the event file. A nil *eventLog writes
// nothing. Errors are logged at warn on the first failure and at debug
// after that, because events are a report for the user and never a reason
// to stop the job.
type eventLog struct {
	path   string
	logger hclog.Logger

	mu     sync.Mutex
	file   *os.File // nil until an open succeeds
	warned bool
	closed bool
}

// openEventLog opens the event file at path, or returns nil for an empty
// path. If the open fails, the failure is logged and each later write
// tries to open the file again.
func openEventLog(path string, logger hclog.Logger) *eventLog {
	if path == "" {
		return nil
	}

	events := &eventLog{path: path, logger: logger}
	events.mu.Lock()
	defer events.mu.Unlock()
	if err := events.openLocked(); err != nil {
		events.failedLocked("cannot open the event file; retrying at the next event", err)
	}
	return events
}

func (l *eventLog) openLocked() error {
	// O_APPEND makes each write land at the current end of the file, after
	// lines that other writers may have appended. O_CLOEXEC keeps the file
	// out of the job and of SSH session processes.
	file, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY|syscall.O_CLOEXEC, eventFileMode)
	if err != nil {
		return err
	}
	l.file = file
	return nil
}

// write appends event as one JSON line.
func (l *eventLog) write(event Event) {
	if l == nil {
		return
	}

	line, err := json.Marshal(event)
	if err != nil {
		l.logger.Error("failed to encode event", "type", event.Type, "error", err)
		return
	}
	line = append(line, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.logger.Debug("event dropped because the event file is closed", "type", event.Type)
		return
	}
	if l.file == nil {
		if err := l.openLocked(); err != nil {
			l.failedLocked("cannot open the event file; the event is lost", err, "type", event.Type)
			return
		}
	}

	// The line goes out in one Write, which is one write(2) for a regular
	// file unless the kernel writes only part of it, as on a full disk.
	// So the driver on the host reads each line whole or not at all.
	if _, err := l.file.Write(line); err != nil {
		l.failedLocked("failed to write to the event file; the event is lost", err, "type", event.Type)
	}
}

// failedLocked logs a failure at warn the first time and at debug after.
func (l *eventLog) failedLocked(message string, err error, keyValues ...any) {
	keyValues = append([]any{"path", l.path, "error", err}, keyValues...)
	if l.warned {
		l.logger.Debug(message, keyValues...)
		return
	}
	l.warned = true
	l.logger.Warn(message, keyValues...)
}

// close closes the file. Later writes drop their events, so that a
// session that ends after Run stopped waiting for it cannot reopen the file.
func (l *eventLog) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.file != nil {
		_ = l.file.Close()
		l.file = nil
	}
}

// formatEventDuration formats d like "1m2.5s", rounded to milliseconds.
func formatEventDuration(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}
