package sshserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A login is one authenticated SSH connection, which the event file calls
// a session. The server counts open logins so that a hold can wait for the
// last one, and starts the max_session clock at the first one.

// sessionIDBytes is the number of random bytes in a session ID, which
// has twice as many hex digits.
const sessionIDBytes = 4

var (
	errServerClosing    = errors.New("the SSH server is shutting down")
	errMaxSessionPassed = errors.New("max_session has passed")
)

// login is an authenticated connection.
type login struct {
	id          string // random, so that IDs differ across restarts of the init
	user        string
	fingerprint string // ssh.FingerprintSHA256 of the login key
	remote      string
	opened      time.Time
}

// loginState is a snapshot of the server's logins.
type loginState struct {
	open  int
	total int // logins since the server started, including closed ones
	// changed is closed at the next change of open or total.
	changed <-chan struct{}
}

func newSessionID() string {
	buffer := make([]byte, sessionIDBytes)
	// crypto/rand.Read never returns an error since Go 1.24.
	_, _ = rand.Read(buffer)
	return hex.EncodeToString(buffer)
}

// beginLogin counts userLogin as open and writes session_opened. At the first
// login it starts the max_session timer. It returns errMaxSessionPassed or
// errServerClosing, without counting it, when logins are no longer allowed.
func (s *server) beginLogin(userLogin *login) error {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return errServerClosing
	case s.maxSessionExpired:
		s.mu.Unlock()
		return errMaxSessionPassed
	}

	s.openLogins++
	s.totalLogins++
	if s.firstLogin.IsZero() {
		s.firstLogin = userLogin.opened
		if s.maxSession > 0 {
			s.maxSessionTimer = time.AfterFunc(s.maxSession, s.expireMaxSession)
		}
	}
	s.notifyLoginsLocked()
	s.mu.Unlock()

	s.events.write(Event{
		Time:           userLogin.opened,
		Type:           EventSessionOpened,
		SessionID:      userLogin.id,
		User:           userLogin.user,
		KeyFingerprint: userLogin.fingerprint,
		RemoteAddr:     userLogin.remote,
	})
	return nil
}

// endLogin counts userLogin as closed and writes session_closed.
func (s *server) endLogin(userLogin *login, logger hclog.Logger) {
	closed := time.Now()
	duration := closed.Sub(userLogin.opened)
	logger.Info("connection closed", "duration", duration)

	// The event goes out before the count drops, so that a hold that ends
	// at this close finds the event in the file.
	s.events.write(Event{
		Time:           closed,
		Type:           EventSessionClosed,
		SessionID:      userLogin.id,
		User:           userLogin.user,
		KeyFingerprint: userLogin.fingerprint,
		RemoteAddr:     userLogin.remote,
		Duration:       formatEventDuration(duration),
	})

	s.mu.Lock()
	s.openLogins--
	s.notifyLoginsLocked()
	s.mu.Unlock()
}

func (s *server) notifyLoginsLocked() {
	close(s.loginsChanged)
	s.loginsChanged = make(chan struct{})
}

func (s *server) logins() loginState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return loginState{open: s.openLogins, total: s.totalLogins, changed: s.loginsChanged}
}

// maxSessionDeadline returns when max_session passes, and false while no
// login has started the clock or there is no limit.
func (s *server) maxSessionDeadline() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxSession <= 0 || s.firstLogin.IsZero() {
		return time.Time{}, false
	}
	return s.firstLogin.Add(s.maxSession), true
}

// maxSessionDone returns a channel that is closed when max_session passes.
func (s *server) maxSessionDone() <-chan struct{} {
	return s.maxSessionPassed
}

func (s *server) hasMaxSessionPassed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxSessionExpired
}

// expireMaxSession runs when max_session has passed since the first login.
// It closes every connection, authenticated or not, and makes the server
// reject later logins, because the time allowed for SSH in this container
// is used up. The job, if still running, goes on without SSH.
func (s *server) expireMaxSession() {
	s.mu.Lock()
	if s.maxSessionExpired || s.closing {
		s.mu.Unlock()
		return
	}
	s.maxSessionExpired = true
	close(s.maxSessionPassed)
	conns := make([]net.Conn, 0, len(s.conns))
	for conn := range s.conns {
		conns = append(conns, conn)
	}
	s.mu.Unlock()

	s.logger.Info("max_session passed; closing SSH connections and rejecting new logins", "max_session", s.maxSession, "connections", len(conns))
	for _, conn := range conns {
		_ = conn.Close()
	}
}

// maxSessionBanner returns the message that a client sees before its
// login is rejected because max_session has passed, or "" before then.
func (s *server) maxSessionBanner() string {
	if !s.hasMaxSessionPassed() {
		return ""
	}
	return fmt.Sprintf("sshrerun: SSH access to this container has ended because max_session %s passed since the first login.\r\n", s.maxSession)
}
