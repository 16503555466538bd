//go:build linux

package sshserver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMainReturnsJobExitCode(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "sh", "-c", "exit 4")
	path := writeConfigFile(t, cfg)
	var stderr syncBuffer

	code := runMain([]string{"-config", path}, &stderr)

	assert.Equal(t, 4, code)
	assert.Contains(t, stderr.String(), "listening for SSH connections")
	assert.Contains(t, stderr.String(), "exit_code=4")
}

func TestMainRequiresConfigFlag(t *testing.T) {
	var stderr syncBuffer

	code := runMain(nil, &stderr)

	assert.Equal(t, 125, code)
	assert.Contains(t, stderr.String(), "usage: container-init -config FILE")
}

func TestMainRejectsInvalidConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	data, err := json.Marshal(&Config{ListenAddress: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	var stderr syncBuffer

	code := runMain([]string{"-config", path}, &stderr)

	assert.Equal(t, 125, code)
	assert.Contains(t, stderr.String(), "cannot start the container init")
	assert.Contains(t, stderr.String(), "user is missing")
}

func TestMainReturns127ForMissingCommand(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	path := writeConfigFile(t, newTestConfig(t, signer.PublicKey(), "no-such-command-sshrerun"))
	var stderr syncBuffer

	code := runMain([]string{"-config", path}, &stderr)

	assert.Equal(t, 127, code)
	assert.Contains(t, stderr.String(), `command \"no-such-command-sshrerun\" not found in PATH`)
}

func TestMainWithoutSSHReturnsJobExitCode(t *testing.T) {
	path := writeConfigFile(t, newConfigWithoutSSH("sh", "-c", "exit 4"))
	var stderr syncBuffer

	code := runMain([]string{"-config", path}, &stderr)

	assert.Equal(t, 4, code)
	assert.Contains(t, stderr.String(), "SSH is disabled because listen_address is empty")
	assert.NotContains(t, stderr.String(), "listening for SSH connections")
	assert.Contains(t, stderr.String(), "exit_code=4")
}
