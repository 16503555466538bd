package advertise

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// mockBinary is AWS's ec2-metadata-mock v1.13.0, which `make tools` builds.
var mockBinary = filepath.Join("..", "..", ".cache", "tools", "ec2-metadata-mock")

// metadataMock is one ec2-metadata-mock process on 127.0.0.1. The tests
// start it only with -n 127.0.0.1, -p, -c and, for IMDSv2 only, -I, and stop
// it by its PID.
type metadataMock struct {
	endpoint   string
	port       int
	configPath string
	home       string
	imdsv2     bool

	cmd    *exec.Cmd
	output *syncBuffer
	exited chan struct{}
}

// startMetadataMock starts the mock with the given metadata values, such as
// "public-ipv4": "203.0.113.9", and stops it when the test ends. With imdsv2
// set, every metadata request needs a session token. The test fails when
// the binary is missing, which `make tools` builds.
func startMetadataMock(t *testing.T, values map[string]string, imdsv2 bool) *metadataMock {
	t.Helper()

	if _, err := os.Stat(mockBinary); err != nil {
		t.Fatalf("ec2-metadata-mock is missing (%v); run `make tools` to build it", err)
	}

	home := t.TempDir()
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{"values": values}})
	if err != nil {
		t.Fatalf("encoding the mock config: %v", err)
	}
	configPath := filepath.Join(home, "aemm-config.json")
	if err := os.WriteFile(configPath, data, 0o644); err != nil {
		t.Fatalf("writing the mock config: %v", err)
	}

	mock := &metadataMock{configPath: configPath, home: home, imdsv2: imdsv2}
	t.Cleanup(mock.stop)

	// Another process may take the free port before the mock binds it, so
	// try a few ports.
	for try := 1; ; try++ {
		mock.port = freeLoopbackPort(t)
		err := mock.start()
		if err == nil {
			return mock
		}
		mock.stop()
		if try == 3 {
			t.Fatalf("starting ec2-metadata-mock: %v\noutput:\n%s", err, mock.output.String())
		}
	}
}

// start starts the mock on m.port and waits until it issues tokens.
func (m *metadataMock) start() error {
	args := []string{"-n", "127.0.0.1", "-p", strconv.Itoa(m.port), "-c", m.configPath}
	if m.imdsv2 {
		args = append(args, "-I")
	}

	m.endpoint = "http://127.0.0.1:" + strconv.Itoa(m.port)
	m.output = &syncBuffer{}
	m.cmd = exec.Command(mockBinary, args...)
	m.cmd.Env = []string{"HOME=" + m.home, "PATH=" + os.Getenv("PATH")}
	m.cmd.Stdout = m.output
	m.cmd.Stderr = m.output
	if err := m.cmd.Start(); err != nil {
		return err
	}

	m.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(m.cmd, m.exited)

	return m.waitReady(10 * time.Second)
}

// waitReady polls the token endpoint until it returns 200, the process
// exits or timeout passes.
func (m *metadataMock) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	for {
		request, err := http.NewRequestWithContext(ctx, http.MethodPut, m.endpoint+"/latest/api/token", nil)
		if err != nil {
			return err
		}
		request.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		response, err := http.DefaultClient.Do(request)
		if err == nil {
			response.Body.Close()
			if response.StatusCode == http.StatusOK {
				return nil
			}
		}

		select {
		case <-m.exited:
			return errors.New("the process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop kills the process by its PID and waits until it has exited.
func (m *metadataMock) stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

// restart stops the mock and starts a new process on the same port. The new
// process rejects the tokens of the old one with 401, as IMDS does for an
// expired token.
func (m *metadataMock) restart(t *testing.T) {
	t.Helper()

	m.stop()
	if err := m.start(); err != nil {
		t.Fatalf("restarting ec2-metadata-mock on port %d: %v\noutput:\n%s", m.port, err, m.output.String())
	}
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago, and so is closed until something binds it.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.1: %v", err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}
