package driver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The init appends one JSON object per line to its event file, which the
// driver mounts from the host. sessionEvent is a line of that file.
type sessionEvent struct {
	Time           time.Time `json:"time"`
	Type           string    `json:"type"`
	SessionID      string    `json:"session_id,omitempty"`
	User           string    `json:"user,omitempty"`
	KeyFingerprint string    `json:"key_fingerprint,omitempty"`
	RemoteAddr     string    `json:"remote_addr,omitempty"`
	Duration       string    `json:"duration,omitempty"`
	ExitCode       *int      `json:"exit_code,omitempty"`
	HoldUntil      string    `json:"hold_until,omitempty"`
	Reason         string    `json:"reason,omitempty"`
}

// Paths of the event file: a directory of the driver's own under the
// task's private directory, mounted read-write at eventsMountDir.
const (
	eventsFileName  = "events.jsonl"
	eventsPollEvery = 500 * time.Millisecond

	// maxEventLine bounds one event, and maxEventsRead one poll's read.
	maxEventLine  = 16 * 1024
	maxEventsRead = 1024 * 1024
)

func eventsHostDir(taskDir string) string {
	return filepath.Join(taskDir, "private", "sshrerun", "events")
}

// sessionEventTailer turns the init's event lines into task events. It
// keeps its byte offset in a file, so that a recovered task repeats no
// event.
type sessionEventTailer struct {
	path         string
	positionPath string
	emit         func(message string, details map[string]string)
	logger       hclog.Logger
}

func newSessionEventTailer(taskDir string, emit func(string, map[string]string), logger hclog.Logger) *sessionEventTailer {
	dir := eventsHostDir(taskDir)
	return &sessionEventTailer{
		path:         filepath.Join(dir, eventsFileName),
		positionPath: filepath.Join(filepath.Dir(dir), "events.position"),
		emit:         emit,
		logger:       logger,
	}
}

// run polls the file until ctx ends, or until exited is closed, after
// which it reads the file one last time.
func (t *sessionEventTailer) run(ctx context.Context, exited <-chan struct{}) {
	offset := t.readPosition()
	ticker := time.NewTicker(eventsPollEvery)
	defer ticker.Stop()
	for {
		offset = t.readFrom(offset)
		select {
		case <-ctx.Done():
			return
		case <-exited:
			t.readFrom(offset)
			return
		case <-ticker.C:
		}
	}
}

// readFrom emits the complete lines after offset and returns the offset
// after the last of them.
//
// A job that runs as root can write to the event directory too, so the
// file is read as untrusted input. It is never read through a symbolic link
// and only when it is a regular file. A poll reads at most maxEventsRead
// bytes, and lines longer than maxEventLine are dropped.
// NOTE: a job that runs as root can still append lines that look like the
// init's events.
func (t *sessionEventTailer) readFrom(offset int64) int64 {
	f, err := os.OpenFile(t.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.logger.Warn("failed to open the SSH event file", "path", t.path, "error", err)
		}
		return offset
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		t.logger.Warn("the SSH event file is not a regular file; ignoring it", "path", t.path)
		return offset
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		t.logger.Warn("failed to read the SSH event file", "path", t.path, "error", err)
		return offset
	}

	reader := bufio.NewReader(io.LimitReader(f, maxEventsRead))
	start := offset
	for {
		line, err := reader.ReadBytes('\n')
		if err != nil {
			// a partial line is read again once the init finished it
			break
		}
		offset += int64(len(line))
		if len(line) > maxEventLine {
			t.logger.Warn("dropped an over-long line of the SSH event file", "bytes", len(line))
			continue
		}
		t.handle(bytes.TrimSpace(line))
	}
	if offset != start {
		t.savePosition(offset)
	}
	return offset
}

func (t *sessionEventTailer) handle(line []byte) {
	if len(line) == 0 {
		return
	}
	var event sessionEvent
	if err := json.Unmarshal(line, &event); err != nil {
		t.logger.Warn("invalid line in the SSH event file", "error", err)
		return
	}
	message, details := describeSessionEvent(&event)
	if message == "" {
		t.logger.Debug("unknown SSH event type", "type", event.Type)
		return
	}
	t.emit(message, details)
}

// describeSessionEvent returns the task event's message and details for a
// line of the event file, or an empty message for an unknown type.
func describeSessionEvent(e *sessionEvent) (string, map[string]string) {
	details := map[string]string{"ssh_event": e.Type}
	switch e.Type {
	case "session_opened", "session_closed":
		details["ssh_user"] = e.User
		details["key_fingerprint"] = e.KeyFingerprint
		details["remote_addr"] = e.RemoteAddr
		details["session_id"] = e.SessionID
		if e.Type == "session_opened" {
			return fmt.Sprintf("SSH session opened by %s from %s with key %s", e.User, e.RemoteAddr, e.KeyFingerprint), details
		}
		details["duration"] = e.Duration
		return fmt.Sprintf("SSH session of %s from %s closed after %s", e.User, e.RemoteAddr, e.Duration), details

	case "job_exited":
		code := -1
		if e.ExitCode != nil {
			code = *e.ExitCode
		}
		details["exit_code"] = strconv.Itoa(code)
		if e.HoldUntil == "" {
			return fmt.Sprintf("The job's command exited with code %d", code), details
		}
		details["hold_until"] = e.HoldUntil
		return fmt.Sprintf("The job's command exited with code %d; SSH stays open for a first connection until %s, and while sessions are open", code, e.HoldUntil), details

	case "hold_ended":
		details["reason"] = e.Reason
		return "SSH closed: " + e.Reason, details
	}
	return "", nil
}

func (t *sessionEventTailer) readPosition() int64 {
	data, err := os.ReadFile(t.positionPath)
	if err != nil {
		return 0
	}
	offset, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || offset < 0 {
		return 0
	}
	return offset
}

func (t *sessionEventTailer) savePosition(offset int64) {
	tmp := t.positionPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(offset, 10)), 0o600); err != nil {
		t.logger.Warn("failed to save the SSH event position", "error", err)
		return
	}
	if err := os.Rename(tmp, t.positionPath); err != nil {
		t.logger.Warn("failed to save the SSH event position", "error", err)
	}
}
