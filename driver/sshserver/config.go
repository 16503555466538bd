// Package sshserver is the init that runs as PID 1 inside each job container.
// It starts the job's command, forwards signals to the job, reaps orphaned
// processes and exits with the job's exit code. Unless the config disables
// SSH, it also serves SSH on the container port so that a user can log in
// to the running job, copy files with sftp or scp and forward local ports
// with ssh -L. With wait_for_connection set, the container stays up for SSH
// after the job exits.
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
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

// DefaultPort is the container port the server listens on when the task's
// port label has no `to`.
const DefaultPort = 2222

// Config is written by the driver and read by the init inside the container.
//
// An empty ListenAddress disables SSH: the init then starts no SSH server
// but still runs the job, forwards signals, reaps orphans and exits with the
// job's exit code. User, AuthorizedKeys and HostKey must be empty in that
// case, and are required otherwise.
type Config struct {
	ListenAddress  string   `json:"listen_address"`  // e.g. ":2222"; empty disables SSH
	User           string   `json:"user"`            // the only login name accepted
	AuthorizedKeys []string `json:"authorized_keys"` // OpenSSH authorized_keys lines
	HostKey        string   `json:"host_key"`        // PEM, OpenSSH private key format (ed25519)
	Command        []string `json:"command"`         // the job's argv; argv[0] is looked up in the container's PATH
	WorkingDir     string   `json:"working_dir,omitempty"`
	LogLevel       string   `json:"log_level,omitempty"`

	// HoldOpen lists absolute paths of FIFOs that the init opens at start
	// and keeps open, without reading or writing, until Run returns.
	//
	// Nomad's log collector reads each task's stdout and stderr FIFO and
	// stops for good at the first EOF, which comes when the last writer
	// closes the FIFO (logRotatorWrapper.start in client/logmon/logmon.go,
	// Nomad v1.6.3, runs io.Copy once and never reopens). The driver plugin
	// writes the container's output into those FIFOs, so a restart of the
	// plugin process closes that writer. The init's open descriptor keeps
	// the collector reading until the next plugin process reopens the FIFOs.
	// A path that cannot be opened or is not a FIFO is logged and skipped.
	HoldOpen []string `json:"hold_open,omitempty"`

	// WaitForConnection is a Go duration such as "10m". With SSH enabled
	// and a value above zero, the init stays up after the job exits: until
	// the last SSH session closes, or for this long for a first session
	// when none is open. Empty or "0s" ends the init with the job.
	WaitForConnection string `json:"wait_for_connection,omitempty"`

	// MaxSession is a Go duration such as "2h", counted from the first SSH
	// login of the container. When it passes, the init closes every SSH
	// connection, rejects new logins and ends a hold. It applies whenever
	// SSH is enabled, with or without a hold. Empty or "0s" sets no limit.
	MaxSession string `json:"max_session,omitempty"`

	// EventsPath is the absolute path of the file where the init appends
	// one JSON Event per line. Empty writes no events.
	EventsPath string `json:"events_path,omitempty"`

	// RunAs is the user that the job and the SSH sessions run as, in the
	// form "user" or "user:group", with names or numeric IDs. The init runs
	// as root and looks names up in the container's /etc/passwd and
	// /etc/group. Empty runs them as the init's own user.
	RunAs string `json:"run_as,omitempty"`

	// SetHome sets HOME to the home directory of RunAs, for a container
	// whose image and task set no HOME, where Docker sets it to /root.
	SetHome bool `json:"set_home,omitempty"`

	// CreateWorkingDir creates WorkingDir and its missing parents before
	// the job starts, owned by the RunAs user, so that a job of a user
	// other than root can write there.
	CreateWorkingDir bool `json:"create_working_dir,omitempty"`

	// EchoGateway makes the init send one ICMP echo request to its default
	// gateway once the SSH listener is open, or at start without SSH (see
	// echoGateway). On Docker's bridge networks the gateway is the host,
	// unless the engine runs rootless or with --default-gateway.
	EchoGateway bool `json:"echo_gateway,omitempty"`
}

// maxUserLength matches the 32-character login name limit of useradd on Linux.
const maxUserLength = 32

var userPattern = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)

// Validate checks every field and returns all problems joined into one
// error. Each message names the field and its value and explains the fix.
// The host key value is never included because it is a secret. With an
// empty ListenAddress, it checks that the SSH fields are unset instead of
// checking their values.
func (c *Config) Validate() error {
	var problems []error

	if c.ListenAddress == "" {
		if err := c.validateSSHUnset(); err != nil {
			problems = append(problems, err)
		}
	} else {
		problems = append(problems, c.validateSSH()...)
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
	if c.CreateWorkingDir && c.WorkingDir == "" {
		problems = append(problems, errors.New("create_working_dir is set without working_dir; set working_dir to the directory to create"))
	}

	if c.LogLevel != "" && hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		problems = append(problems, fmt.Errorf("log_level %q is invalid; use one of trace, debug, info, warn, error or off", c.LogLevel))
	}

	for _, field := range []struct{ name, value string }{
		{"wait_for_connection", c.WaitForConnection},
		{"max_session", c.MaxSession},
	} {
		if _, err := parseDuration(field.name, field.value); err != nil {
			problems = append(problems, err)
		}
	}

	if c.RunAs != "" && (len(c.RunAs) > 2*maxUserLength+1 || !runAsPattern.MatchString(c.RunAs)) {
		problems = append(problems, fmt.Errorf(`run_as %q is invalid; use "user" or "user:group", with names or numeric IDs`, c.RunAs))
	}
	if c.SetHome && c.RunAs == "" {
		problems = append(problems, errors.New("set_home is true without run_as; set run_as to the user whose home directory HOME names, or remove set_home"))
	}

	if c.EventsPath != "" && !filepath.IsAbs(c.EventsPath) {
		problems = append(problems, fmt.Errorf(`events_path %q is not an absolute path; use a path that starts with "/"`, c.EventsPath))
	}

	for i, path := range c.HoldOpen {
		switch {
		case path == "":
			problems = append(problems, fmt.Errorf("hold_open[%d] is empty; set the absolute path of a FIFO or remove the entry", i))
		case !filepath.IsAbs(path):
			problems = append(problems, fmt.Errorf(`hold_open[%d] %q is not an absolute path; use a path that starts with "/"`, i, path))
		}
	}

	return errors.Join(problems...)
}

// validateSSHUnset rejects SSH fields in a config without a listen address,
// because the init would silently ignore them.
func (c *Config) validateSSHUnset() error {
	var fields []string
	if c.User != "" {
		fields = append(fields, "user")
	}
	if len(c.AuthorizedKeys) > 0 {
		fields = append(fields, "authorized_keys")
	}
	if c.HostKey != "" {
		fields = append(fields, "host_key")
	}
	if len(fields) == 0 {
		return nil
	}

	names, verb := fields[0], "is"
	if len(fields) > 1 {
		names = strings.Join(fields[:len(fields)-1], ", ") + " and " + fields[len(fields)-1]
		verb = "are"
	}
	return fmt.Errorf("listen_address is empty, which disables SSH, but %s %s set; set listen_address to serve SSH or remove %s", names, verb, names)
}

// validateSSH checks the fields of the SSH server and returns one error
// per problem.
func (c *Config) validateSSH() []error {
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

	return problems
}

// parseDuration parses the duration field name. An empty value is zero.
func parseDuration(name, value string) (time.Duration, error) {
	if value == "" {
		return 0, nil
	}

	duration, err := time.ParseDuration(value)
	switch {
	case err != nil:
		return 0, fmt.Errorf(`%s %q is not a valid duration; use a Go duration such as "10m" or "1h30m"`, name, value)
	case duration < 0:
		return 0, fmt.Errorf(`%s %q is negative; use zero or a positive duration such as "10m"`, name, value)
	}
	return duration, nil
}

// waitForConnection returns WaitForConnection as a duration. It is zero
// for an invalid value, which Validate rejects.
func (c *Config) waitForConnection() time.Duration {
	duration, _ := parseDuration("wait_for_connection", c.WaitForConnection)
	return duration
}

// maxSession returns MaxSession as a duration, zero for no limit. It is
// zero for an invalid value too, which Validate rejects.
func (c *Config) maxSession() time.Duration {
	duration, _ := parseDuration("max_session", c.MaxSession)
	return duration
}

func validateListenAddress(address string) error {
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
