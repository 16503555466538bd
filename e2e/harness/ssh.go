package harness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"golang.org/x/crypto/ssh"
)

// UserKey is a generated SSH key pair, stored as files for OpenSSH.
type UserKey struct {
	PrivatePath   string
	AuthorizedKey string // one authorized_keys line
}

// NewUserKey generates an ed25519 key and writes the private key to dir.
func NewUserKey(dir string) (*UserKey, error) {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate a user key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(private, "")
	if err != nil {
		return nil, fmt.Errorf("failed to encode the user key: %w", err)
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the user key: %w", err)
	}
	sshPublic, err := ssh.NewPublicKey(public)
	if err != nil {
		return nil, err
	}
	line := string(ssh.MarshalAuthorizedKey(sshPublic))
	return &UserKey{PrivatePath: path, AuthorizedKey: line[:len(line)-1]}, nil
}

// SSHCommand returns OpenSSH's ssh client invocation that runs command as
// user on host:port with key. It never prompts, and it trusts the host
// key on first use, keeping it in a known_hosts file next to the key.
func SSHCommand(ctx context.Context, key *UserKey, user, host string, port int, command ...string) *exec.Cmd {
	return sshCommand(ctx, key, user, host, port, nil, command)
}

// SSHCommandTTY is SSHCommand with a forced PTY (ssh -tt).
func SSHCommandTTY(ctx context.Context, key *UserKey, user, host string, port int, command ...string) *exec.Cmd {
	return sshCommand(ctx, key, user, host, port, []string{"-tt"}, command)
}

func sshCommand(ctx context.Context, key *UserKey, user, host string, port int, options, command []string) *exec.Cmd {
	args := append(append([]string(nil), options...),
		"-p", strconv.Itoa(port),
		"-i", key.PrivatePath,
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "UserKnownHostsFile="+filepath.Join(filepath.Dir(key.PrivatePath), "known_hosts"),
		"-o", "ConnectTimeout=10",
		"-o", "LogLevel=ERROR",
		user+"@"+host,
	)
	return exec.CommandContext(ctx, "ssh", append(args, command...)...)
}
