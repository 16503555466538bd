//go:build linux

package sshserver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// makeFIFO creates a FIFO in a new temporary directory and returns its path.
func makeFIFO(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.stdout.fifo")
	require.NoError(t, unix.Mkfifo(path, 0o600))
	return path
}

// fifoEnd is one open end of a FIFO as a raw descriptor. An *os.File would
// wait in the runtime poller instead of returning EAGAIN from a read.
type fifoEnd struct {
	fd     int
	closed bool
}

// openFIFOEnd opens path with flags plus O_NONBLOCK and O_CLOEXEC, so that
// the job does not inherit the test's descriptor. Cleanup closes it unless
// the test closed it first.
func openFIFOEnd(t *testing.T, path string, flags int) *fifoEnd {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	require.NoError(t, err)

	end := &fifoEnd{fd: fd}
	t.Cleanup(func() {
		if !end.closed {
			_ = end.close()
		}
	})
	return end
}

func (e *fifoEnd) close() error {
	e.closed = true
	return unix.Close(e.fd)
}

// read makes one non-blocking read of up to 4096 bytes.
func (e *fifoEnd) read() (string, error) {
	buffer := make([]byte, 4096)
	n, err := unix.Read(e.fd, buffer)
	if n < 0 {
		n = 0
	}
	return string(buffer[:n]), err
}

func TestRunHoldsFIFOOpenUntilReturn(t *testing.T) {
	fifo := makeFIFO(t)
	reader := openFIFOEnd(t, fifo, unix.O_RDONLY)
	directory := t.TempDir()
	fdsFile := directory + "/fds"
	doneFile := directory + "/done"
	// The listing goes to a temporary file first, so that the test never
	// reads a partial one.
	script := `ls -l /proc/$$/fd/ > "$1.tmp"; mv "$1.tmp" "$1"; while [ ! -e "$2" ]; do sleep 0.05; done; exit 3`
	cfg := newConfigWithoutSSH("sh", "-c", script, "job", fdsFile, doneFile)
	cfg.HoldOpen = []string{fifo}
	ti := startInit(t, cfg, Options{})

	waitFor(t, "the job to list its file descriptors", func() bool { return fileExists(fdsFile) })
	fds, err := os.ReadFile(fdsFile)
	require.NoError(t, err)
	assert.Contains(t, string(fds), fdsFile+".tmp", "the listing should show the paths of open files")
	assert.NotContains(t, string(fds), fifo, "the job must not inherit the held FIFO")

	writer := openFIFOEnd(t, fifo, unix.O_WRONLY)
	_, err = unix.Write(writer.fd, []byte("line from the plugin\n"))
	require.NoError(t, err)
	require.NoError(t, writer.close())

	line, err := reader.read()
	require.NoError(t, err)
	assert.Equal(t, "line from the plugin\n", line)
	_, err = reader.read()
	assert.ErrorIs(t, err, unix.EAGAIN, "the reader must not see EOF while the init holds the FIFO")

	require.NoError(t, os.WriteFile(doneFile, nil, 0o600))
	result := ti.wait(t)
	assert.NoError(t, result.err)
	assert.Equal(t, 3, result.code)
	assert.Contains(t, ti.logs.String(), "holding log FIFOs open")

	rest, err := reader.read()
	assert.NoError(t, err, "the reader should get EOF after Run returns")
	assert.Empty(t, rest)
}

func TestRunHidesHeldFIFOFromSSHSession(t *testing.T) {
	fifo := makeFIFO(t)
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "sleep", "300")
	cfg.HoldOpen = []string{fifo}
	ti := startInit(t, cfg, Options{})
	client := ti.login(t, signer)

	session, err := client.NewSession()
	require.NoError(t, err)
	defer session.Close()
	output, err := session.Output("ls -l /proc/$$/fd/")

	require.NoError(t, err)
	assert.Contains(t, string(output), "pipe:", "the listing should show the session's stdio pipes")
	assert.NotContains(t, string(output), fifo, "SSH sessions must not inherit the held FIFO")
}

func TestRunWarnsOnBadHoldOpenPath(t *testing.T) {
	missing := tempPath(t, "missing.fifo")
	regular := tempPath(t, "regular")
	require.NoError(t, os.WriteFile(regular, []byte("content\n"), 0o600))
	cfg := newConfigWithoutSSH("sh", "-c", "exit 4")
	cfg.HoldOpen = []string{missing, regular}
	ti := startInit(t, cfg, Options{})

	result := ti.wait(t)

	assert.NoError(t, result.err)
	assert.Equal(t, 4, result.code)
	logs := ti.logs.String()
	assert.Contains(t, logs, "[WARN]  sshrerun-init: cannot hold FIFO open")
	assert.Contains(t, logs, "path="+missing)
	assert.Contains(t, logs, "no such file or directory")
	assert.Contains(t, logs, "path="+regular)
	assert.Contains(t, logs, "is not a FIFO (file mode -rw-------)")
	assert.NotContains(t, logs, "holding log FIFOs open")
	content, err := os.ReadFile(regular)
	require.NoError(t, err)
	assert.Equal(t, "content\n", string(content), "the init must not change a file it skips")
}

func TestOpenFIFORejectsDirectory(t *testing.T) {
	directory := t.TempDir()

	file, err := openFIFO(directory)

	assert.Nil(t, file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), directory+" is not a FIFO")
	assert.False(t, errors.Is(err, os.ErrNotExist))
}
