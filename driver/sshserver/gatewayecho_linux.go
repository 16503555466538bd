package sshserver

import (
	"fmt"
	"net/netip"
	"syscall"
)

// echoRequest is an ICMP echo request with an empty body. The kernel sets
// the identifier and the checksum of a datagram socket's echo requests.
var echoRequest = []byte{8, 0, 0, 0, 0, 0, 0, 1}

// sendEcho sends one ICMP echo request to addr through an ICMP datagram
// socket.
func sendEcho(addr netip.Addr) error {
	if !addr.Is4() {
		return fmt.Errorf("%s is not an IPv4 address", addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_ICMP)
	if err != nil {
		return fmt.Errorf("failed to open an ICMP datagram socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Sendto(fd, echoRequest, 0, &syscall.SockaddrInet4{Addr: addr.As4()}); err != nil {
		return fmt.Errorf("failed to send an ICMP echo request to %s: %w", addr, err)
	}
	return nil
}
