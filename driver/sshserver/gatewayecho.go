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

// echoGateway sends one ICMP echo request to the gateway of the
// container's default route, without waiting for the reply.
//
// Docker Engine 20.10 publishes a container's ports before the container's
// network is up, so the host cannot resolve the container's address for a
// connection made meanwhile and sends its SYN only about a second later.
// To send the echo, the container asks for the gateway's MAC address by
// ARP, and the host, which is the gateway on a Docker bridge network,
// learns the container's address from that request at once.
//
// The ICMP datagram socket needs no capability when the ping_group_range
// sysctl includes the init's group, as Docker 20.10 and later set it. A
// failure is logged at debug level only, because it costs nothing but that
// second.
func echoGateway(logger hclog.Logger) {
	gateway, err := readDefaultGateway(routeTablePath)
	if err != nil {
		logger.Debug("failed to find the default gateway for the ICMP echo request", "error", err)
		return
	}
	if err := sendEcho(gateway); err != nil {
		logger.Debug("failed to send an ICMP echo request to the default gateway", "gateway", gateway.String(), "error", err)
		return
	}
	logger.Debug("sent an ICMP echo request to the default gateway", "gateway", gateway.String())
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

// defaultGateway returns the gateway of the default route with the lowest
// metric in a table in the format of /proc/net/route.
func defaultGateway(table io.Reader) (netip.Addr, error) {
	var best netip.Addr
	var bestMetric uint32
	found := false
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
		// the kernel prints the unsigned metric as a signed 32-bit number
		signed, err := strconv.ParseInt(metricText, 10, 32)
		if err != nil {
			continue
		}
		metric := uint32(int32(signed))
		gateway, err := parseRouteAddress(gatewayHex)
		if err != nil || gateway.IsUnspecified() {
			continue
		}
		if !found || metric < bestMetric {
			best, bestMetric, found = gateway, metric, true
		}
	}
	if err := scanner.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("failed to read the route table: %w", err)
	}
	if !found {
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
