package sshserver

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hold keeps the init, and so the container, up after the job exits, so
// that a user can log in over SSH and look at what the job left behind.
// It ends when the last SSH session closes, when no session opens within
// the wait after the job's exit, when max_session passes, when the init
// receives a forwarded signal such as Nomad's SIGTERM, or when Run's
// context ends.
type hold struct {
	server    *server
	wait      time.Duration // wait_for_connection
	jobExited time.Time
	// until is when the hold ends if no session is open: the end of the
	// wait, or the max_session deadline if that is earlier.
	until time.Time
}

// newHold returns the hold that follows a job that exited at jobExited, or
// nil when there is none because SSH is disabled (srv is nil) or
// wait_for_connection is zero.
func newHold(cfg *Config, srv *server, jobExited time.Time) *hold {
	wait := cfg.waitForConnection()
	if srv == nil || wait <= 0 {
		return nil
	}

	until := jobExited.Add(wait)
	if deadline, ok := srv.maxSessionDeadline(); ok && deadline.Before(until) {
		until = deadline
	}
	return &hold{server: srv, wait: wait, jobExited: jobExited, until: until}
}

// run waits until the hold ends, then logs the reason and writes it to
// events as hold_ended. A signal from signals ends the hold and is not
// forwarded, because the job has already exited.
func (h *hold) run(ctx context.Context, signals <-chan os.Signal, events *eventLog, logger hclog.Logger) {
	logger.Info("holding the container open for SSH after the job exited",
		"until", h.until.Format(time.RFC3339),
		"wait_for_connection", h.wait,
		"open_sessions", h.server.logins().open)

	reason := h.waitForEnd(ctx, signals)

	logger.Info("SSH hold ended", "reason", reason)
	events.write(Event{Time: time.Now(), Type: EventHoldEnded, Reason: reason})
}

// waitForEnd returns the reason why the hold ended.
func (h *hold) waitForEnd(ctx context.Context, signals <-chan os.Signal) string {
	atStart := h.server.logins()
	// sawSession is set once a session has been open during the hold.
	// Counting every login since the start also catches a session that
	// opened and closed between two checks.
	sawSession := atStart.open > 0

	noSession := time.NewTimer(time.Until(h.jobExited.Add(h.wait)))
	defer noSession.Stop()
	waitPassed := false

	maxSessionReason := fmt.Sprintf("max_session %s passed", h.server.maxSession)
	for {
		// max_session comes first, because when it passes it also closes
		// the last session.
		select {
		case <-h.server.maxSessionDone():
			return maxSessionReason
		default:
		}

		state := h.server.logins()
		if state.total > atStart.total {
			sawSession = true
		}
		switch {
		case sawSession && state.open == 0:
			return "the last SSH session closed"
		case !sawSession && waitPassed:
			return fmt.Sprintf("no SSH connection within %s", h.wait)
		}

		select {
		case <-state.changed:
		case <-noSession.C:
			waitPassed = true
		case <-h.server.maxSessionDone():
			return maxSessionReason
		case sig := <-signals:
			return "received " + signalName(sig)
		case <-ctx.Done():
			return "the init was canceled"
		}
	}
}

// jobExitedEvent returns the job_exited event, with hold_until when
// jobHold is not nil.
func jobExitedEvent(exited time.Time, code int, jobHold *hold) Event {
	event := Event{Time: exited, Type: EventJobExited, ExitCode: &code}
	if jobHold != nil {
		event.HoldUntil = jobHold.until.Format(time.RFC3339)
	}
	return event
}
