package sshserver

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

const (
	// handshakeTimeout bounds the SSH handshake and authentication, so that
	// idle or half-open connections do not hold a goroutine.
	handshakeTimeout = 30 * time.Second

	// shutdownTimeout bounds how long close waits for connection and
	// session goroutines after it has closed every connection.
	shutdownTimeout = 10 * time.Second

	// maxAcceptBackoff is the longest pause between retries after an
	// Accept error, as in net/http.
	maxAcceptBackoff = time.Second

	// defaultShell is the shell that runs shell and exec requests.
	defaultShell = "/bin/sh"
)

// server is the SSH server of the init. It accepts one user with public
// key authentication and serves "session" and "direct-tcpip" channels.
type server struct {
	user           string
	authorizedKeys [][]byte // ssh.PublicKey.Marshal of each authorized key
	hostKey        ssh.Signer
	workingDir     string
	shell          string
	maxSession     time.Duration // zero for no limit
	reaper         *reaper
	identity       *identity // the user of session processes; nil for the init's own
	events         *eventLog // nil writes no events
	logger         hclog.Logger
	nextChannelID  atomic.Uint64

	// maxSessionPassed is closed when max_session passes.
	maxSessionPassed chan struct{}

	mu       sync.Mutex
	listener net.Listener
	conns    map[net.Conn]struct{}
	closing  bool
	handlers sync.WaitGroup // connection, channel and forwarding goroutines

	// Logins, as logins.go describes them.
	openLogins        int
	totalLogins       int
	firstLogin        time.Time     // zero until the first login
	loginsChanged     chan struct{} // closed and replaced when openLogins or totalLogins changes
	maxSessionTimer   *time.Timer   // started at the first login when maxSession is set
	maxSessionExpired bool
}

// newServer returns a server for cfg that writes session events to events,
// which may be nil.
func newServer(cfg *Config, reaper *reaper, events *eventLog, logger hclog.Logger) (*server, error) {
	keys, err := ParseAuthorizedKeys(cfg.AuthorizedKeys)
	if err != nil {
		return nil, err
	}
	hostKey, err := parseHostKey(cfg.HostKey)
	if err != nil {
		return nil, err
	}

	srv := &server{
		user:       cfg.User,
		hostKey:    hostKey,
		workingDir: cfg.WorkingDir,
		shell:      defaultShell,
		maxSession: cfg.maxSession(),
		reaper:     reaper,
		events:     events,
		logger:     logger.Named("ssh"),
		conns:      make(map[net.Conn]struct{}),

		maxSessionPassed: make(chan struct{}),
		loginsChanged:    make(chan struct{}),
	}
	for _, key := range keys {
		srv.authorizedKeys = append(srv.authorizedKeys, key.Marshal())
	}
	return srv, nil
}

// serve accepts connections on listener until close is called, and then
// returns nil. It returns the Accept error if something else closes the
// listener, and retries after other Accept errors such as EMFILE.
func (s *server) serve(listener net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return listener.Close()
	}
	s.listener = listener
	s.mu.Unlock()

	var backoff time.Duration
	for {
		conn, err := listener.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}

			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			s.logger.Error("failed to accept SSH connection; retrying", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0

		if !s.track(conn) {
			_ = conn.Close()
			return nil
		}
		go s.handleConn(conn)
	}
}

// track registers conn and one handler unless the server is closing.
func (s *server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.closing {
		return false
	}
	s.conns[conn] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

func (s *server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// close closes the listener and every connection, which ends all sessions
// and stops their processes, then waits up to shutdownTimeout for the
// connection and session goroutines. It may be called more than once.
func (s *server) close() {
	s.mu.Lock()
	s.closing = true
	if s.maxSessionTimer != nil {
		s.maxSessionTimer.Stop()
	}
	listener := s.listener
	conns := make([]net.Conn, 0, len(s.conns))
	for conn := range s.conns {
		conns = append(conns, conn)
	}
	s.mu.Unlock()

	if listener != nil {
		_ = listener.Close()
	}
	if len(conns) > 0 {
		s.logger.Info("closing SSH connections", "count", len(conns))
	}
	for _, conn := range conns {
		_ = conn.Close()
	}

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		s.logger.Warn("SSH sessions did not end in time; returning anyway", "timeout", shutdownTimeout)
	}
}

// handleConn runs the handshake and serves the channels of one connection.
func (s *server) handleConn(netConn net.Conn) {
	defer s.handlers.Done()
	defer s.untrack(netConn)
	defer netConn.Close()

	remote := netConn.RemoteAddr().String()
	attempts := &authAttempts{}

	_ = netConn.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, channels, requests, err := ssh.NewServerConn(netConn, s.serverConfig(attempts))
	if err != nil {
		attempts.logFailure(s.logger, remote, err)
		return
	}
	_ = netConn.SetDeadline(time.Time{})

	userLogin := &login{
		id:          newSessionID(),
		user:        conn.User(),
		fingerprint: conn.Permissions.Extensions[fingerprintExtension],
		remote:      remote,
		opened:      time.Now(),
	}
	logger := s.logger.With("session_id", userLogin.id, "user", userLogin.user, "remote_address", remote)
	if err := s.beginLogin(userLogin); err != nil {
		// max_session passed or the server began to close during the
		// handshake.
		logger.Info("login closed after authentication", "reason", err)
		return
	}
	defer s.endLogin(userLogin, logger)
	logger.Info("login accepted", "key_fingerprint", userLogin.fingerprint)

	go rejectGlobalRequests(requests, logger)

	for newChannel := range channels {
		s.handleChannel(newChannel, logger)
	}
}

// handleChannel accepts a session or direct-tcpip channel and serves it in
// a new goroutine. It rejects every other type, such as the x11 and
// auth-agent@openssh.com channels that only a server may open.
func (s *server) handleChannel(newChannel ssh.NewChannel, logger hclog.Logger) {
	channelLogger := logger.With("channel_id", s.nextChannelID.Add(1))

	switch newChannel.ChannelType() {
	case "session":
		channel, channelRequests, err := newChannel.Accept()
		if err != nil {
			channelLogger.Warn("failed to accept session channel", "error", err)
			return
		}

		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			sess := newSession(s, channel, channelLogger)
			sess.serve(channelRequests)
		}()

	case "direct-tcpip":
		// Dialing can take up to forwardDialTimeout, so it runs in the
		// goroutine, where it does not hold up other channels.
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.forwardDirectTCPIP(newChannel, channelLogger)
		}()

	default:
		channelLogger.Debug("rejected channel", "channel_type", newChannel.ChannelType())
		_ = newChannel.Reject(ssh.UnknownChannelType, "only session and direct-tcpip channels are supported")
	}
}

// rejectGlobalRequests replies false to every global request, including
// tcpip-forward, because the server offers no remote port forwarding.
// Keepalive requests get a failure reply too, which OpenSSH clients accept
// as a sign of life. They are not logged, because clients send one every
// ServerAliveInterval.
func rejectGlobalRequests(requests <-chan *ssh.Request, logger hclog.Logger) {
	for req := range requests {
		if req.Type != "keepalive@openssh.com" {
			logger.Debug("rejected global request", "request_type", req.Type)
		}
		_ = req.Reply(false, nil)
	}
}
