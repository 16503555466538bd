package sshserver

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// routeTablePath is the kernel's IPv4 routing table of the init's network
// namespace.
const routeTablePath = "/proc/net/route"

// Route flags of the kernel's route table (RTF_UP and RTF_GATEWAY in
// linux/route.h).
const (
	routeUp      = 0x1
	routeGateway = 0x2
)

// errNoDefaultRoute is returned by defaultGateway for a table without a
// default route through a gateway.
var errNoDefaultRoute = errors.New("no default route through a gateway")

// announceAddress sends one ICMP echo request to the gateway of the
// container's default route, and does not wait for the reply.
//
// Docker publishes a container's ports before the container's network is
// up. A connection to the host port in that window makes the host send a
// SYN to the container's address, which the host cannot resolve yet. The
// host retries only about a second later, with its next ARP request or
// TCP's retransmission, so every connection of that window waits a
// second, although the SSH server answers long before.
//
// To send the echo request, the container asks for the gateway's MAC
// address by ARP, and that request carries the container's own address
// and MAC. On Docker's bridge networks the gateway is the host, which
// then learns them at once and sends the waiting SYNs.
//
// The echo goes through an ICMP datagram socket, which needs no
// capability: Docker 20.10 and later set the ping_group_range sysctl of a
// container so that every group may open one. Failures are logged at
// debug level only, because all they cost is that second.
func announceAddress(logger hclog.Logger) {
	gateway, err := readDefaultGateway(routeTablePath)
	if err != nil {
		logger.Debug("the container's address was not announced", "error", err)
		return
	}
	if err := sendEcho(gateway); err != nil {
		logger.Debug("the container's address was not announced", "gateway", gateway.String(), "error", err)
		return
	}
	logger.Debug("announced the container's address to its gateway", "gateway", gateway.String())
}

// readDefaultGateway reads the default gateway from the route table at
// path.
func readDefaultGateway(path string) (netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("failed to read the route table: %w", err)
	}
	defer f.Close()
	return defaultGateway(f)
}

// defaultGateway returns the gateway of the up default route with the
// lowest metric in a table in the format of /proc/net/route.
func defaultGateway(table io.Reader) (netip.Addr, error) {
	var best netip.Addr
	bestMetric := -1
	scanner := bufio.NewScanner(table)
	for line := 0; scanner.Scan(); line++ {
		fields := strings.Fields(scanner.Text())
		// the header line, and lines too short to hold the mask
		if line == 0 || len(fields) < 8 {
			continue
		}
		destination, gatewayHex, flagsHex, metricText, mask := fields[1], fields[2], fields[3], fields[6], fields[7]
		if destination != "00000000" || mask != "00000000" {
			continue
		}
		flags, err := strconv.ParseUint(flagsHex, 16, 16)
		if err != nil || flags&(routeUp|routeGateway) != routeUp|routeGateway {
			continue
		}
		metric, err := strconv.Atoi(metricText)
		if err != nil || metric < 0 {
			continue
		}
		gateway, err := parseRouteAddress(gatewayHex)
		if err != nil || gateway.IsUnspecified() {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = gateway, metric
		}
	}
	if err := scanner.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("failed to read the route table: %w", err)
	}
	if bestMetric < 0 {
		return netip.Addr{}, errNoDefaultRoute
	}
	return best, nil
}

// parseRouteAddress decodes an IPv4 address of the route table, which
// the kernel prints as the hex digits of a 32-bit value in the host's byte
// order.
func parseRouteAddress(text string) (netip.Addr, error) {
	raw, err := hex.DecodeString(text)
	if err != nil || len(raw) != 4 {
		return netip.Addr{}, fmt.Errorf("route address %q is not 8 hex digits", text)
	}
	var addr [4]byte
	binary.BigEndian.PutUint32(addr[:], binary.NativeEndian.Uint32(raw))
	return netip.AddrFrom4(addr), nil
}
