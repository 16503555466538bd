package sshserver

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

// fingerprintExtension is the ssh.Permissions extension that carries the
// SHA256 fingerprint of the key that a connection logged in with.
const fingerprintExtension = "sshrerun-key-fingerprint"

var errKeyNotAuthorized = errors.New("public key is not authorized")

// serverConfig returns an SSH server config that records the
// authentication attempts of one connection in attempts. It offers only
// public key authentication, because x/crypto/ssh rejects password and
// keyboard-interactive requests when their callbacks are nil.
func (s *server) serverConfig(attempts *authAttempts) *ssh.ServerConfig {
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			fingerprint := ssh.FingerprintSHA256(key)
			if s.hasMaxSessionPassed() {
				attempts.rejectedKeys = append(attempts.rejectedKeys, fingerprint)
				return nil, errMaxSessionPassed
			}
			if err := s.authorize(conn.User(), key); err != nil {
				attempts.rejectedKeys = append(attempts.rejectedKeys, fingerprint)
				return nil, err
			}
			return &ssh.Permissions{Extensions: map[string]string{fingerprintExtension: fingerprint}}, nil
		},
		// After max_session, the banner shows the client the reason for the
		// rejected login. Before then it is empty, and none is sent.
		BannerCallback: func(ssh.ConnMetadata) string {
			return s.maxSessionBanner()
		},
		AuthLogCallback: func(conn ssh.ConnMetadata, method string, err error) {
			attempts.user = conn.User()
			if err != nil && method != "none" && method != "publickey" {
				attempts.rejectedMethods = append(attempts.rejectedMethods, method)
			}
		},
	}
	config.AddHostKey(s.hostKey)
	return config
}

// authorize accepts key for user if user is the configured user and the
// key's wire encoding equals that of an authorized key.
func (s *server) authorize(user string, key ssh.PublicKey) error {
	if user != s.user {
		return fmt.Errorf("login name %q is not the configured user", user)
	}

	encoded := key.Marshal()
	for _, authorized := range s.authorizedKeys {
		if bytes.Equal(encoded, authorized) {
			return nil
		}
	}
	return errKeyNotAuthorized
}

// authAttempts records the authentication attempts of one connection so
// that a failed login is logged once, with every key and method it tried.
// The ssh package calls the callbacks from the handshake goroutine only.
type authAttempts struct {
	user            string
	rejectedKeys    []string // SHA256 fingerprints
	rejectedMethods []string // methods other than none and publickey
}

func (a *authAttempts) logFailure(logger hclog.Logger, remote string, err error) {
	if a.user == "" {
		// No authentication request arrived, as with a port probe or a
		// handshake error such as no common algorithm.
		logger.Debug("SSH handshake failed", "remote_address", remote, "error", err)
		return
	}

	logger.Warn("login rejected",
		"user", a.user,
		"remote_address", remote,
		"rejected_key_fingerprints", a.rejectedKeys,
		"rejected_methods", a.rejectedMethods,
		"error", err)
}
