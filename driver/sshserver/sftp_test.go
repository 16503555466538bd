//go:build linux

package sshserver

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pkg/sftp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// startSFTPInit runs the init with a working directory and returns it, a
// client key that it accepts and the working directory.
func startSFTPInit(t *testing.T) (*testInit, ssh.Signer, ed25519.PrivateKey, string) {
	t.Helper()
	signer, private := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "sleep", "300")
	cfg.WorkingDir = t.TempDir()
	return startInit(t, cfg, Options{}), signer, private, cfg.WorkingDir
}

// newSFTPClient opens an SFTP session over a new SSH login.
func newSFTPClient(t *testing.T, ti *testInit, signer ssh.Signer) *sftp.Client {
	t.Helper()
	client, err := sftp.NewClient(ti.login(t, signer))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestSFTPUploadAndDownload(t *testing.T) {
	ti, signer, _, workingDir := startSFTPInit(t)
	client := newSFTPClient(t, ti, signer)
	content := bytes.Repeat([]byte("sftp test data\n"), 10000)
	remotePath := filepath.Join(workingDir, "uploaded.txt")

	upload, err := client.Create(remotePath)
	require.NoError(t, err)
	_, err = upload.Write(content)
	require.NoError(t, err)
	require.NoError(t, upload.Close())
	download, err := client.Open(remotePath)
	require.NoError(t, err)
	downloaded, err := io.ReadAll(download)
	require.NoError(t, err)
	require.NoError(t, download.Close())

	assert.Equal(t, content, downloaded)
	onDisk, err := os.ReadFile(remotePath)
	require.NoError(t, err)
	assert.Equal(t, content, onDisk)
}

func TestSFTPListsDirectory(t *testing.T) {
	ti, signer, _, workingDir := startSFTPInit(t)
	require.NoError(t, os.WriteFile(filepath.Join(workingDir, "a.txt"), []byte("a"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(workingDir, "subdir"), 0o700))
	client := newSFTPClient(t, ti, signer)

	entries, err := client.ReadDir(workingDir)

	require.NoError(t, err)
	var names []string
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	sort.Strings(names)
	assert.Equal(t, []string{"a.txt", "subdir"}, names)
}

func TestSFTPRelativePathsStartAtWorkingDir(t *testing.T) {
	ti, signer, _, workingDir := startSFTPInit(t)
	client := newSFTPClient(t, ti, signer)

	cwd, err := client.Getwd()
	require.NoError(t, err)
	file, err := client.Create("relative.txt")
	require.NoError(t, err)
	_, err = file.Write([]byte("relative\n"))
	require.NoError(t, err)
	require.NoError(t, file.Close())

	assert.Equal(t, workingDir, cwd)
	content, err := os.ReadFile(filepath.Join(workingDir, "relative.txt"))
	require.NoError(t, err)
	assert.Equal(t, "relative\n", string(content))
}

func TestSFTPWorkingDirDefaultsToRoot(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := newSFTPClient(t, ti, signer)

	cwd, err := client.Getwd()

	require.NoError(t, err)
	assert.Equal(t, "/", cwd)
}

func TestSFTPSessionEndIsLogged(t *testing.T) {
	ti, signer, _, _ := startSFTPInit(t)
	client := newSFTPClient(t, ti, signer)

	require.NoError(t, client.Close())

	waitFor(t, "the SFTP session end to be logged", func() bool {
		return regexp.MustCompile(`session ended: .* type=sftp exit_status=0`).MatchString(ti.logs.String())
	})
}

func TestUnknownSubsystemIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	defer session.Close()

	err = session.RequestSubsystem("netconf")

	assert.Error(t, err)
}

func TestSubsystemAfterExecIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.Start("sleep 0.2"))

	accepted, err := session.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))

	require.NoError(t, err)
	assert.False(t, accepted)
	assert.NoError(t, session.Wait())
}

// TestOpenSSHScpUsesSFTP copies a file up and back with OpenSSH's scp in
// SFTP mode (-s), the default since OpenSSH 9.0. It needs OpenSSH's
// client, which .ci/run installs.
func TestOpenSSHScpUsesSFTP(t *testing.T) {
	scpPath, err := exec.LookPath("scp")
	if err != nil {
		t.Fatalf("OpenSSH's scp is not installed (%v); install Debian's openssh-client", err)
	}
	ti, _, private, workingDir := startSFTPInit(t)
	home := t.TempDir()
	keyPath := filepath.Join(home, "id_ed25519")
	block, err := ssh.MarshalPrivateKey(private, "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600))
	localFile := filepath.Join(home, "local.txt")
	require.NoError(t, os.WriteFile(localFile, []byte("copied with scp\n"), 0o600))
	_, port, err := net.SplitHostPort(ti.address)
	require.NoError(t, err)

	runScp(t, scpPath, home, keyPath, port, localFile, testUser+"@127.0.0.1:uploaded.txt")
	downloaded := filepath.Join(home, "downloaded.txt")
	runScp(t, scpPath, home, keyPath, port, testUser+"@127.0.0.1:uploaded.txt", downloaded)

	uploaded, err := os.ReadFile(filepath.Join(workingDir, "uploaded.txt"))
	require.NoError(t, err)
	assert.Equal(t, "copied with scp\n", string(uploaded))
	content, err := os.ReadFile(downloaded)
	require.NoError(t, err)
	assert.Equal(t, "copied with scp\n", string(content))
}

// runScp runs scp in SFTP mode against 127.0.0.1 with only the options
// given here, so that no user or system ssh config applies. It starts scp
// through the reaper, because the reaper collects every child of the test
// process and exec.Cmd.Wait would find none.
func runScp(t *testing.T, scpPath, home, keyPath, port, source, destination string) {
	t.Helper()
	output, err := os.Create(filepath.Join(home, "scp-output"))
	require.NoError(t, err)
	defer output.Close()

	cmd := exec.Command(scpPath, "-s", "-B", "-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes",
		"-o", "ConnectTimeout=10",
		"-i", keyPath, "-P", port, source, destination)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = output, output

	c, err := sharedReaper(hclog.NewNullLogger()).start(cmd)
	require.NoError(t, err)
	select {
	case <-c.done:
	case <-time.After(testTimeout):
		_ = syscall.Kill(c.pid, syscall.SIGKILL)
		<-c.done
		t.Fatalf("scp did not finish within %s", testTimeout)
	}

	logged, err := os.ReadFile(output.Name())
	require.NoError(t, err)
	require.Equal(t, 0, exitCode(c.status), "scp %s %s failed:\n%s", source, destination, logged)
}
