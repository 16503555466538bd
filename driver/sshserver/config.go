// Package sshserver is the init that runs as PID 1 inside each job container.
// It starts the job's command, serves SSH on the container port so that a
// user can log in to the running job, forwards signals to the job, reaps
// orphaned processes and exits with the job's exit code.
package sshserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

// DefaultPort is the container port the server listens on when the task's
// port label has no `to`.
const DefaultPort = 2222

// Config is written by the driver and read by the init inside the container.
type Config struct {
	ListenAddress  string   `json:"listen_address"`  // e.g. ":2222"
	User           string   `json:"user"`            // the only login name accepted
	AuthorizedKeys []string `json:"authorized_keys"` // OpenSSH authorized_keys lines
	HostKey        string   `json:"host_key"`        // PEM, OpenSSH private key format (ed25519)
	Command        []string `json:"command"`         // the job's argv; argv[0] is looked up in the container's PATH
	WorkingDir     string   `json:"working_dir,omitempty"`
	LogLevel       string   `json:"log_level,omitempty"`
}

// maxUserLength matches the 32-character login name limit of useradd on Linux.
const maxUserLength = 32

var userPattern = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)

// Validate checks every field and returns all problems joined into one
// error. Each message names the field and its value and explains the fix.
// The host key value is never included because it is a secret.
func (c *Config) Validate() error {
	var problems []error

	if err := validateListenAddress(c.ListenAddress); err != nil {
		problems = append(problems, err)
	}

	switch {
	case c.User == "":
		problems = append(problems, errors.New(`user is missing; set the login name that SSH clients must use, for example "root"`))
	case len(c.User) > maxUserLength || !userPattern.MatchString(c.User):
		problems = append(problems, fmt.Errorf("user %q is invalid; use at most %d letters, digits, '.', '_' or '-', not starting with '-'", c.User, maxUserLength))
	}

	if len(c.AuthorizedKeys) == 0 {
		problems = append(problems, errors.New("authorized_keys is empty; add at least one OpenSSH public key line"))
	} else if _, err := ParseAuthorizedKeys(c.AuthorizedKeys); err != nil {
		problems = append(problems, err)
	}

	if _, err := parseHostKey(c.HostKey); err != nil {
		problems = append(problems, err)
	}

	switch {
	case len(c.Command) == 0:
		problems = append(problems, errors.New(`command is empty; set the job's argv, for example ["/bin/sh", "-c", "make test"]`))
	case c.Command[0] == "":
		problems = append(problems, errors.New("command[0] is empty; set the program name or path to run"))
	}

	if c.WorkingDir != "" && !filepath.IsAbs(c.WorkingDir) {
		problems = append(problems, fmt.Errorf(`working_dir %q is not an absolute path; use a path that starts with "/"`, c.WorkingDir))
	}

	if c.LogLevel != "" && hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		problems = append(problems, fmt.Errorf("log_level %q is invalid; use one of trace, debug, info, warn, error or off", c.LogLevel))
	}

	return errors.Join(problems...)
}

func validateListenAddress(address string) error {
	if address == "" {
		return fmt.Errorf(`listen_address is missing; set host:port, for example ":%d"`, DefaultPort)
	}

	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf(`listen_address %q is invalid (%v); use host:port, for example ":%d"`, address, err, DefaultPort)
	}

	number, err := strconv.Atoi(port)
	if err != nil || number < 0 || number > 65535 {
		return fmt.Errorf("listen_address %q has an invalid port %q; use a number from 0 to 65535", address, port)
	}
	return nil
}

// parseHostKey parses the PEM host key. Its errors never include the key.
func parseHostKey(pemKey string) (ssh.Signer, error) {
	if pemKey == "" {
		return nil, errors.New("host_key is missing; set a PEM-encoded OpenSSH private key")
	}

	signer, err := ssh.ParsePrivateKey([]byte(pemKey))
	var passphraseErr *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &passphraseErr):
		return nil, errors.New("host_key is encrypted with a passphrase; set an unencrypted PEM-encoded OpenSSH private key")
	case err != nil:
		return nil, fmt.Errorf("host_key is invalid (%v); set a PEM-encoded OpenSSH private key, for example one written by ssh-keygen -t ed25519", err)
	}
	return signer, nil
}

// ReadConfig reads the JSON config file at path and validates it.
// Unknown fields are an error because the driver and the init are built
// from the same source, so an unknown field means a wrong file.
func ReadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading init config: %w", err)
	}

	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()

	var cfg Config
	if err := decoder.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parsing init config %s: %w", path, err)
	}
	if err := decoder.Decode(&struct{}{}); err != io.EOF {
		return nil, fmt.Errorf("parsing init config %s: unexpected data after the JSON object", path)
	}

	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid init config %s: %w", path, err)
	}
	return &cfg, nil
}
