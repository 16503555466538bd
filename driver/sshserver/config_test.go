//go:build linux

package sshserver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateAcceptsGoodConfig(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "/bin/sh", "-c", "true")
	cfg.ListenAddress = ":2222"
	cfg.WorkingDir = "/work"
	cfg.LogLevel = "TRACE"

	assert.NoError(t, cfg.Validate())
}

func TestValidateRejectsBadConfig(t *testing.T) {
	signer, _ := newEd25519Signer(t)

	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"empty listen address with SSH fields", func(c *Config) { c.ListenAddress = "" }, "listen_address is empty, which disables SSH, but user, authorized_keys and host_key are set; set listen_address to serve SSH or remove user, authorized_keys and host_key"},
		{"listen address without port", func(c *Config) { c.ListenAddress = "localhost" }, `listen_address "localhost" is invalid`},
		{"listen address port out of range", func(c *Config) { c.ListenAddress = ":70000" }, `listen_address ":70000" has an invalid port "70000"; use a number from 0 to 65535`},
		{"listen address named port", func(c *Config) { c.ListenAddress = ":ssh" }, `listen_address ":ssh" has an invalid port "ssh"`},
		{"missing user", func(c *Config) { c.User = "" }, "user is missing"},
		{"user with space", func(c *Config) { c.User = "bad user" }, `user "bad user" is invalid`},
		{"user starting with dash", func(c *Config) { c.User = "-root" }, `user "-root" is invalid`},
		{"user too long", func(c *Config) { c.User = strings.Repeat("a", 33) }, "is invalid; use at most 32"},
		{"no authorized keys", func(c *Config) { c.AuthorizedKeys = nil }, "authorized_keys is empty; add at least one OpenSSH public key line"},
		{"bad authorized key", func(c *Config) { c.AuthorizedKeys = append(c.AuthorizedKeys, "garbage") }, `authorized_keys[1] "garbage": invalid public key`},
		{"missing host key", func(c *Config) { c.HostKey = "" }, "host_key is missing"},
		{"invalid host key", func(c *Config) { c.HostKey = "-----BEGIN NOT A KEY-----" }, "host_key is invalid"},
		{"missing command", func(c *Config) { c.Command = nil }, "command is empty"},
		{"empty argv0", func(c *Config) { c.Command = []string{"", "x"} }, "command[0] is empty"},
		{"relative working dir", func(c *Config) { c.WorkingDir = "src" }, `working_dir "src" is not an absolute path`},
		{"unknown log level", func(c *Config) { c.LogLevel = "verbose" }, `log_level "verbose" is invalid; use one of trace, debug, info, warn, error or off`},
		{"run_as with space", func(c *Config) { c.RunAs = "ci user" }, `run_as "ci user" is invalid; use "user" or "user:group"`},
		{"run_as with two groups", func(c *Config) { c.RunAs = "ci:a:b" }, `run_as "ci:a:b" is invalid`},
		{"set_home without run_as", func(c *Config) { c.SetHome = true }, "set_home is true without run_as"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			cfg := newTestConfig(t, signer.PublicKey(), "true")
			test.modify(cfg)

			err := cfg.Validate()

			require.Error(t, err)
			assert.Contains(t, err.Error(), test.want)
		})
	}
}

func TestValidateAcceptsConfigWithoutSSH(t *testing.T) {
	cfg := newConfigWithoutSSH("/bin/sh", "-c", "true")
	cfg.HoldOpen = []string{"/alloc/logs/.task.stdout.fifo", "/alloc/logs/.task.stderr.fifo"}

	assert.NoError(t, cfg.Validate())
}

func TestValidateRejectsSSHFieldsWithoutListenAddress(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	sshConfig := newTestConfig(t, signer.PublicKey(), "true")

	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"user", func(c *Config) { c.User = testUser }, "listen_address is empty, which disables SSH, but user is set; set listen_address to serve SSH or remove user"},
		{"authorized keys", func(c *Config) { c.AuthorizedKeys = sshConfig.AuthorizedKeys }, "but authorized_keys is set; set listen_address to serve SSH or remove authorized_keys"},
		{"host key", func(c *Config) { c.HostKey = sshConfig.HostKey }, "but host_key is set; set listen_address to serve SSH or remove host_key"},
		{"user and host key", func(c *Config) { c.User, c.HostKey = testUser, sshConfig.HostKey }, "but user and host_key are set; set listen_address to serve SSH or remove user and host_key"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			cfg := newConfigWithoutSSH("true")
			test.modify(cfg)

			err := cfg.Validate()

			require.Error(t, err)
			assert.Contains(t, err.Error(), test.want)
			assert.NotContains(t, err.Error(), "BEGIN OPENSSH PRIVATE KEY")
		})
	}
}

func TestValidateRejectsBadHoldOpen(t *testing.T) {
	tests := []struct {
		name     string
		holdOpen []string
		want     string
	}{
		{"relative path", []string{"/alloc/logs/ok.fifo", "logs/task.fifo"}, `hold_open[1] "logs/task.fifo" is not an absolute path; use a path that starts with "/"`},
		{"empty entry", []string{""}, "hold_open[0] is empty; set the absolute path of a FIFO or remove the entry"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			cfg := newConfigWithoutSSH("true")
			cfg.HoldOpen = test.holdOpen

			err := cfg.Validate()

			require.Error(t, err)
			assert.Contains(t, err.Error(), test.want)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := &Config{ListenAddress: "no-port", HoldOpen: []string{"relative"}}

	err := cfg.Validate()

	require.Error(t, err)
	for _, field := range []string{"listen_address", "user", "authorized_keys", "host_key", "command", "hold_open"} {
		assert.Contains(t, err.Error(), field)
	}
}

func TestValidateNeverQuotesHostKey(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "true")
	secret := cfg.HostKey[:len(cfg.HostKey)-40] // cut, so it no longer parses

	cfg.HostKey = secret
	err := cfg.Validate()

	require.Error(t, err)
	assert.Contains(t, err.Error(), "host_key is invalid")
	lines := strings.Split(secret, "\n")
	assert.NotContains(t, err.Error(), lines[1])
}

func TestReadConfigRoundTrip(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	want := newTestConfig(t, signer.PublicKey(), "/bin/sh", "-c", "echo hi")
	want.WorkingDir = "/srv"
	path := writeConfigFile(t, want)

	got, err := ReadConfig(path)

	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestReadConfigRoundTripWithoutSSH(t *testing.T) {
	want := newConfigWithoutSSH("/bin/sh", "-c", "echo hi")
	want.HoldOpen = []string{"/alloc/logs/.task.stdout.fifo"}
	path := writeConfigFile(t, want)

	got, err := ReadConfig(path)

	require.NoError(t, err)
	assert.Equal(t, want, got)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"hold_open":["/alloc/logs/.task.stdout.fifo"]`)
}

func TestReadConfigRejectsUnknownField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"listen_adress": ":2222"}`), 0o600))

	_, err := ReadConfig(path)

	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), `unknown field "listen_adress"`)
}

func TestReadConfigRejectsTrailingData(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	path := writeConfigFile(t, newTestConfig(t, signer.PublicKey(), "true"))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(data, []byte(" {}")...), 0o600))

	_, err = ReadConfig(path)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "unexpected data after the JSON object")
}

func TestReadConfigReportsMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.json")

	_, err := ReadConfig(path)

	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), path)
}

func TestReadConfigValidates(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "true")
	cfg.User = ""
	path := writeConfigFile(t, cfg)

	_, err := ReadConfig(path)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "user is missing")
}

func writeConfigFile(t *testing.T, cfg *Config) string {
	t.Helper()
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func TestValidateAcceptsHoldAndEventFields(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	tests := []struct {
		name, wait, maxSession, eventsPath string
	}{
		{"all unset", "", "", ""},
		{"zero durations", "0s", "0", ""},
		{"durations and events path", "10m", "2h", "/.sshrerun/events/events.jsonl"},
		{"compound duration", "1h30m", "90s", ""},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			cfg := newTestConfig(t, signer.PublicKey(), "true")
			cfg.WaitForConnection, cfg.MaxSession, cfg.EventsPath = test.wait, test.maxSession, test.eventsPath

			assert.NoError(t, cfg.Validate())
		})
	}
}

func TestValidateRejectsBadHoldAndEventFields(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"wait without unit", func(c *Config) { c.WaitForConnection = "10" }, `wait_for_connection "10" is not a valid duration; use a Go duration such as "10m" or "1h30m"`},
		{"wait with unknown unit", func(c *Config) { c.WaitForConnection = "10 minutes" }, `wait_for_connection "10 minutes" is not a valid duration`},
		{"negative wait", func(c *Config) { c.WaitForConnection = "-1m" }, `wait_for_connection "-1m" is negative; use zero or a positive duration such as "10m"`},
		{"max session not a duration", func(c *Config) { c.MaxSession = "two hours" }, `max_session "two hours" is not a valid duration`},
		{"negative max session", func(c *Config) { c.MaxSession = "-2h" }, `max_session "-2h" is negative`},
		{"relative events path", func(c *Config) { c.EventsPath = "events.jsonl" }, `events_path "events.jsonl" is not an absolute path; use a path that starts with "/"`},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			cfg := newConfigWithoutSSH("true")
			test.modify(cfg)

			err := cfg.Validate()

			require.Error(t, err)
			assert.Contains(t, err.Error(), test.want)
		})
	}
}

func TestReadConfigRoundTripWithHoldAndEvents(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	want := newTestConfig(t, signer.PublicKey(), "true")
	want.WaitForConnection = "10m"
	want.MaxSession = "2h"
	want.EventsPath = "/.sshrerun/events/events.jsonl"
	path := writeConfigFile(t, want)

	got, err := ReadConfig(path)

	require.NoError(t, err)
	assert.Equal(t, want, got)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"wait_for_connection":"10m","max_session":"2h","events_path":"/.sshrerun/events/events.jsonl"`)
}
