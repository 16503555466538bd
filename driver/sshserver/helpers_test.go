//go:build linux

package sshserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

const (
	testUser = "runner"
	// testTimeout bounds every wait in the tests.
	testTimeout = 20 * time.Second
)

func TestMain(m *testing.M) {
	// The tests run the reaper as the init does, so it also collects
	// orphans. As a child subreaper, the test process receives the orphans
	// of its children, as PID 1 does in a container.
	sharedReaper(hclog.NewNullLogger()).enableOrphanReaping()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic("PR_SET_CHILD_SUBREAPER failed: " + err.Error())
	}
	os.Exit(m.Run())
}

// newEd25519Signer generates an ed25519 key pair.
func newEd25519Signer(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, private, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(private)
	require.NoError(t, err)
	return signer, private
}

// authorizedLine returns the authorized_keys line of key without the
// trailing newline.
func authorizedLine(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// newTestConfig returns a valid config that accepts clientKey for testUser.
func newTestConfig(t *testing.T, clientKey ssh.PublicKey, command ...string) *Config {
	t.Helper()
	_, hostPrivate := newEd25519Signer(t)
	block, err := ssh.MarshalPrivateKey(hostPrivate, "test host key")
	require.NoError(t, err)

	return &Config{
		ListenAddress:  "127.0.0.1:0",
		User:           testUser,
		AuthorizedKeys: []string{authorizedLine(clientKey)},
		HostKey:        string(pem.EncodeToMemory(block)),
		Command:        command,
		LogLevel:       "debug",
	}
}

// newConfigWithoutSSH returns a valid config that runs command with SSH
// disabled.
func newConfigWithoutSSH(command ...string) *Config {
	return &Config{Command: command, LogLevel: "debug"}
}

// syncBuffer is a bytes.Buffer that is safe for concurrent use.
type syncBuffer struct {
	mu     sync.Mutex
	buffer bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}

// runResult is what Run returned.
type runResult struct {
	code int
	err  error
}

// testInit is Run running in the test process on a loopback listener.
type testInit struct {
	address string
	logs    *syncBuffer
	cancel  context.CancelFunc
	result  chan runResult
}

// startInit runs Run with cfg in the background, serving SSH on 127.0.0.1
// unless cfg.ListenAddress is empty. Cleanup cancels it, which kills a job
// that is still running, and waits for Run.
func startInit(t *testing.T, cfg *Config, opts Options) *testInit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	ti := &testInit{
		logs:   &syncBuffer{},
		cancel: cancel,
		result: make(chan runResult, 1),
	}
	if cfg.ListenAddress != "" {
		listener := loopbackListener(t)
		opts.Listener = listener
		ti.address = listener.Addr().String()
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: loggerName, Level: hclog.Debug, Output: ti.logs})

	go func() {
		code, err := Run(ctx, cfg, logger, opts)
		ti.result <- runResult{code, err}
	}()

	t.Cleanup(func() {
		cancel()
		select {
		case result := <-ti.result:
			ti.result <- result
		case <-time.After(testTimeout):
			t.Errorf("Run did not return within %s after cancel", testTimeout)
		}
	})
	return ti
}

// wait returns what Run returned, failing the test after testTimeout.
func (ti *testInit) wait(t *testing.T) runResult {
	t.Helper()
	select {
	case result := <-ti.result:
		ti.result <- result
		return result
	case <-time.After(testTimeout):
		t.Fatalf("Run did not return within %s", testTimeout)
		return runResult{}
	}
}

// dial connects to the init as user with the given auth methods.
func (ti *testInit) dial(user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", ti.address, clientConfig(user, auth...))
}

func clientConfig(user string, auth ...ssh.AuthMethod) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            user,
		Auth:            auth,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         testTimeout,
	}
}

// newTestServer returns a server for cfg without a job, for tests that
// change its fields before it serves.
func newTestServer(t *testing.T, cfg *Config) *server {
	t.Helper()
	srv, err := newServer(cfg, sharedReaper(hclog.NewNullLogger()), nil, hclog.NewNullLogger())
	require.NoError(t, err)
	return srv
}

// loopbackListener listens on a free port of 127.0.0.1.
func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return listener
}

// serveOnLoopback serves srv on 127.0.0.1 until the test ends and returns
// its address.
func serveOnLoopback(t *testing.T, srv *server) string {
	t.Helper()
	listener := loopbackListener(t)

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.serve(listener)
	}()
	t.Cleanup(func() {
		srv.close()
		<-done
	})
	return listener.Addr().String()
}

// login connects as testUser with signer and closes the client at cleanup.
func (ti *testInit) login(t *testing.T, signer ssh.Signer) *ssh.Client {
	t.Helper()
	client, err := ti.dial(testUser, ssh.PublicKeys(signer))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// startLongJobInit runs the init with a job that runs until the test ends,
// and returns it with a client key that it accepts.
func startLongJobInit(t *testing.T) (*testInit, ssh.Signer, *Config) {
	t.Helper()
	signer, _ := newEd25519Signer(t)
	cfg := newTestConfig(t, signer.PublicKey(), "sleep", "300")
	return startInit(t, cfg, Options{}), signer, cfg
}

// exitStatusOf returns the exit status in the error of Session.Wait or
// Session.Run, and 0 for a nil error.
func exitStatusOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var exitErr *ssh.ExitError
	require.ErrorAs(t, err, &exitErr)
	return exitErr.ExitStatus()
}

// waitFor polls condition until it is true or testTimeout passes.
func waitFor(t *testing.T, description string, condition func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !condition() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", testTimeout, description)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processGone reports whether pid no longer exists, not even as a zombie.
func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// tempPath returns the path of name in a new temporary directory.
func tempPath(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(t.TempDir(), name)
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// listeningTCPSockets returns the number of TCP sockets in LISTEN state
// that the test process has open. It matches the socket inodes of
// /proc/self/fd against the LISTEN entries (state 0A) of
// /proc/self/net/tcp and tcp6.
func listeningTCPSockets(t *testing.T) int {
	t.Helper()
	listening := make(map[string]bool)
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		data, err := os.ReadFile(table)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a kernel without IPv6 has no tcp6 table
		}
		require.NoError(t, err)

		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		for _, line := range lines[1:] {
			// Columns: sl local_address rem_address st tx_queue:rx_queue
			// tr:tm->when retrnsmt uid timeout inode ...
			fields := strings.Fields(line)
			if len(fields) > 9 && fields[3] == "0A" {
				listening[fields[9]] = true
			}
		}
	}

	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	count := 0
	for _, entry := range entries {
		target, err := os.Readlink("/proc/self/fd/" + entry.Name())
		if err != nil {
			continue // closed since ReadDir, like the directory's own fd
		}
		inode, isSocket := strings.CutPrefix(target, "socket:[")
		if isSocket && listening[strings.TrimSuffix(inode, "]")] {
			count++
		}
	}
	return count
}

// readEvents returns the events in the event file at path, or none when
// the file does not exist. Unknown fields fail the test, so that the
// schema the driver reads cannot change unnoticed.
func readEvents(t *testing.T, path string) []Event {
	t.Helper()
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer file.Close()

	var events []Event
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		decoder := json.NewDecoder(bytes.NewReader(scanner.Bytes()))
		decoder.DisallowUnknownFields()
		var event Event
		require.NoError(t, decoder.Decode(&event), "event line %q", scanner.Text())
		events = append(events, event)
	}
	require.NoError(t, scanner.Err())
	return events
}

// eventTypes returns the type of each event.
func eventTypes(events []Event) []string {
	types := make([]string, 0, len(events))
	for _, event := range events {
		types = append(types, event.Type)
	}
	return types
}

// findEvent returns the first event of eventType, or nil.
func findEvent(events []Event, eventType string) *Event {
	for i := range events {
		if events[i].Type == eventType {
			return &events[i]
		}
	}
	return nil
}

// waitForEvent polls the event file at path until it has an event of
// eventType and returns that event.
func waitForEvent(t *testing.T, path, eventType string) Event {
	t.Helper()
	var found *Event
	waitFor(t, "a "+eventType+" event", func() bool {
		found = findEvent(readEvents(t, path), eventType)
		return found != nil
	})
	return *found
}

// returned reports whether Run has returned, without waiting.
func (ti *testInit) returned() bool {
	select {
	case result := <-ti.result:
		ti.result <- result
		return true
	default:
		return false
	}
}
