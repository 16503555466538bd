package driver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// hostKey is a task's SSH host key.
type hostKey struct {
	PEM         string
	Public      string // "ssh-ed25519 AAAA...", the form known_hosts uses
	Fingerprint string // SHA256:..., as ssh-keygen -l prints it
}

// newHostKey generates an ed25519 host key for one task.
func newHostKey() (*hostKey, error) {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate the SSH host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(private, "")
	if err != nil {
		return nil, fmt.Errorf("failed to encode the SSH host key: %w", err)
	}
	sshPublic, err := ssh.NewPublicKey(public)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the SSH host public key: %w", err)
	}
	return &hostKey{
		PEM:         string(pem.EncodeToMemory(block)),
		Public:      strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPublic))),
		Fingerprint: ssh.FingerprintSHA256(sshPublic),
	}, nil
}
