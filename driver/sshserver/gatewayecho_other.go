//go:build !linux

package sshserver

import (
	"errors"
	"net/netip"
)

// sendEcho returns an error on systems other than Linux, where the init
// never runs because job containers are Linux containers.
func sendEcho(netip.Addr) error {
	return errors.New("ICMP datagram sockets are only used on Linux")
}
