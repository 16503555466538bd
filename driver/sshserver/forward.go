package sshserver

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

// forwardDialTimeout bounds the connection to the destination of a
// direct-tcpip channel. A refused port fails at once. This only bounds a
// destination that drops packets.
const forwardDialTimeout = 10 * time.Second

// directTCPIPRequest is the payload of a direct-tcpip channel open request
// (RFC 4254, section 7.2), which OpenSSH's ssh -L sends for each local
// connection.
type directTCPIPRequest struct {
	DestinationHost string
	DestinationPort uint32
	OriginatorHost  string
	OriginatorPort  uint32
}

// forwardDirectTCPIP dials the destination of a direct-tcpip channel from
// inside the container and copies data both ways. It rejects the channel
// with ConnectionFailed when the payload is invalid or the dial fails.
func (s *server) forwardDirectTCPIP(newChannel ssh.NewChannel, logger hclog.Logger) {
	var request directTCPIPRequest
	if err := ssh.Unmarshal(newChannel.ExtraData(), &request); err != nil {
		logger.Debug("invalid direct-tcpip request", "error", err)
		_ = newChannel.Reject(ssh.ConnectionFailed, "invalid direct-tcpip request")
		return
	}
	if request.DestinationPort > 65535 {
		logger.Debug("rejected direct-tcpip request with invalid port", "port", request.DestinationPort)
		_ = newChannel.Reject(ssh.ConnectionFailed, "invalid destination port")
		return
	}

	destination := net.JoinHostPort(request.DestinationHost, strconv.FormatUint(uint64(request.DestinationPort), 10))
	originator := net.JoinHostPort(request.OriginatorHost, strconv.FormatUint(uint64(request.OriginatorPort), 10))
	logger = logger.With("destination", destination, "originator", originator)

	target, err := net.DialTimeout("tcp", destination, forwardDialTimeout)
	if err != nil {
		logger.Info("port forwarding failed to connect", "error", err)
		_ = newChannel.Reject(ssh.ConnectionFailed, "connect to "+destination+" failed: "+err.Error())
		return
	}

	channel, requests, err := newChannel.Accept()
	if err != nil {
		logger.Warn("failed to accept direct-tcpip channel", "error", err)
		_ = target.Close()
		return
	}
	logger.Info("port forwarding started")

	started := time.Now()
	sent, received := copyBothWays(channel, requests, target.(*net.TCPConn))
	logger.Info("port forwarding ended", "bytes_to_destination", sent, "bytes_from_destination", received, "duration", time.Since(started))
}

// copyBothWays copies between channel and target until both directions
// have ended, then closes both and returns the bytes copied each way.
//
// It passes on half-closes as OpenSSH's sshd does: EOF from the client
// shuts down the write side of target, and EOF from target sends EOF to
// the client. When the client closes the channel, or the connection ends,
// the ssh package closes requests, and closing target then ends a copy
// that still waits for data from target.
func copyBothWays(channel ssh.Channel, requests <-chan *ssh.Request, target *net.TCPConn) (sent, received int64) {
	var copies sync.WaitGroup
	copies.Add(2)
	go func() {
		defer copies.Done()
		sent, _ = io.Copy(target, channel)
		_ = target.CloseWrite()
	}()
	go func() {
		defer copies.Done()
		received, _ = io.Copy(channel, target)
		_ = channel.CloseWrite()
	}()

	requestsDone := make(chan struct{})
	go func() {
		defer close(requestsDone)
		// direct-tcpip channels have no requests, so all are rejected.
		for req := range requests {
			_ = req.Reply(false, nil)
		}
		_ = target.Close()
	}()

	copies.Wait()
	_ = channel.Close()
	_ = target.Close()
	// requests closes when the client confirms the close, or when the
	// connection ends, which server.close makes happen.
	<-requestsDone
	return sent, received
}
