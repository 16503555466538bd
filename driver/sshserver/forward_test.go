//go:build linux

package sshserver

import (
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// echoServer is a TCP server on 127.0.0.1 that sends back what it reads.
// After EOF from a client, it closes that connection.
type echoServer struct {
	address string
	// ended counts the connections that have ended, by EOF or an error.
	ended atomic.Int32
}

func startEchoServer(t *testing.T) *echoServer {
	t.Helper()
	listener := loopbackListener(t)
	t.Cleanup(func() { _ = listener.Close() })
	echo := &echoServer{address: listener.Addr().String()}

	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
				echo.ended.Add(1)
			}()
		}
	}()
	return echo
}

// closedLoopbackPort returns the address of a port on 127.0.0.1 that no
// one listens on.
func closedLoopbackPort(t *testing.T) string {
	t.Helper()
	listener := loopbackListener(t)
	address := listener.Addr().String()
	require.NoError(t, listener.Close())
	return address
}

func TestDirectTCPIPEchoesData(t *testing.T) {
	echo := startEchoServer(t)
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)

	conn, err := client.Dial("tcp", echo.address)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("ping through the tunnel"))
	require.NoError(t, err)
	reply := make([]byte, len("ping through the tunnel"))
	_, err = io.ReadFull(conn, reply)

	require.NoError(t, err)
	assert.Equal(t, "ping through the tunnel", string(reply))
}

func TestDirectTCPIPPassesHalfClose(t *testing.T) {
	echo := startEchoServer(t)
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	conn, err := client.Dial("tcp", echo.address)
	require.NoError(t, err)
	defer conn.Close()
	data := strings.Repeat("large payload ", 20000)

	writeErr := make(chan error, 1)
	go func() {
		_, err := conn.Write([]byte(data))
		if err == nil {
			// EOF reaches the echo server as a shutdown of its read side,
			// after which it closes, and EOF comes back to the client.
			err = conn.(interface{ CloseWrite() error }).CloseWrite()
		}
		writeErr <- err
	}()
	reply, err := io.ReadAll(conn)

	require.NoError(t, err)
	assert.NoError(t, <-writeErr)
	assert.Equal(t, len(data), len(reply))
	assert.Equal(t, data, string(reply))
}

func TestDirectTCPIPCloseEndsTargetConnection(t *testing.T) {
	echo := startEchoServer(t)
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	conn, err := client.Dial("tcp", echo.address)
	require.NoError(t, err)
	_, err = conn.Write([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(conn, make([]byte, 1))
	require.NoError(t, err)

	require.NoError(t, conn.Close())

	waitFor(t, "the echo server's connection to end", func() bool { return echo.ended.Load() == 1 })
	waitFor(t, "the forwarding end to be logged", func() bool {
		return strings.Contains(ti.logs.String(), "port forwarding ended")
	})
}

func TestDirectTCPIPToClosedPortFails(t *testing.T) {
	address := closedLoopbackPort(t)
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)

	_, err := client.Dial("tcp", address)

	var openErr *ssh.OpenChannelError
	require.ErrorAs(t, err, &openErr)
	assert.Equal(t, ssh.ConnectionFailed, openErr.Reason)
	assert.Contains(t, openErr.Message, "connect to "+address+" failed")
}

func TestDirectTCPIPInvalidPayloadIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)

	_, _, err := client.OpenChannel("direct-tcpip", []byte("not a payload"))

	var openErr *ssh.OpenChannelError
	require.ErrorAs(t, err, &openErr)
	assert.Equal(t, ssh.ConnectionFailed, openErr.Reason)
}

func TestRemoteForwardingIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)

	// Listen sends a tcpip-forward request, which requests that the server
	// listen on the address.
	listener, err := client.Listen("tcp", "127.0.0.1:0")
	if listener != nil {
		_ = listener.Close()
	}

	assert.Error(t, err)
	waitFor(t, "the rejection to be logged", func() bool {
		return strings.Contains(ti.logs.String(), "rejected global request:")
	})
	assert.Contains(t, ti.logs.String(), "request_type=tcpip-forward")
}

func TestAgentForwardingIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	defer session.Close()

	err = agent.RequestAgentForwarding(session)

	assert.Error(t, err)
}

func TestX11ForwardingIsRejected(t *testing.T) {
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	session, err := client.NewSession()
	require.NoError(t, err)
	defer session.Close()
	request := struct {
		SingleConnection bool
		AuthProtocol     string
		AuthCookie       string
		ScreenNumber     uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00112233445566778899aabbccddeeff", 0}

	accepted, err := session.SendRequest("x11-req", true, ssh.Marshal(request))

	require.NoError(t, err)
	assert.False(t, accepted)
}

func TestForwardedConnectionsEndWithRun(t *testing.T) {
	echo := startEchoServer(t)
	ti, signer, _ := startLongJobInit(t)
	client := ti.login(t, signer)
	conn, err := client.Dial("tcp", echo.address)
	require.NoError(t, err)
	defer conn.Close()

	ti.cancel()
	ti.wait(t)

	waitFor(t, "the echo server's connection to end", func() bool { return echo.ended.Load() == 1 })
	_, err = conn.Read(make([]byte, 1))
	assert.Error(t, err, "the tunnel should be closed")
}
