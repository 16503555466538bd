//go:build linux

package sshserver

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const routeHeader = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"

// routeHex writes an IPv4 address as the kernel prints it in
// /proc/net/route: a 32-bit value in the host's byte order.
func routeHex(address string) string {
	addr := netip.MustParseAddr(address).As4()
	return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(addr[:]))
}

// route is one line of a route table.
func route(iface, destination, gateway, flags, metric, mask string) string {
	return strings.Join([]string{iface, routeHex(destination), routeHex(gateway), flags, "0", "0", metric, routeHex(mask), "0", "0", "0"}, "\t") + "\n"
}

func TestDefaultGateway(t *testing.T) {
	cases := []struct {
		name  string
		table string
		want  string
	}{
		{
			name: "docker bridge",
			table: route("eth0", "0.0.0.0", "172.17.0.1", "0003", "0", "0.0.0.0") +
				route("eth0", "172.17.0.0", "0.0.0.0", "0001", "0", "255.255.0.0"),
			want: "172.17.0.1",
		},
		{
			name: "lowest metric wins",
			table: route("eth0", "0.0.0.0", "192.168.2.1", "0003", "200", "0.0.0.0") +
				route("eth1", "0.0.0.0", "172.19.0.1", "0003", "100", "0.0.0.0"),
			want: "172.19.0.1",
		},
		{
			name: "a metric of 2^31 or more prints negative",
			table: route("eth0", "0.0.0.0", "192.168.2.1", "0003", "-2", "0.0.0.0") +
				route("eth1", "0.0.0.0", "172.19.0.1", "0003", "7", "0.0.0.0"),
			want: "172.19.0.1",
		},
		{
			name: "routes without a gateway or not default are skipped",
			table: route("eth0", "0.0.0.0", "192.168.2.1", "0001", "0", "0.0.0.0") +
				route("eth0", "0.0.0.0", "0.0.0.0", "0003", "0", "0.0.0.0") +
				route("eth0", "172.17.0.0", "172.17.0.1", "0003", "0", "255.255.0.0") +
				route("eth0", "0.0.0.0", "172.17.0.1", "0003", "0", "0.0.0.0"),
			want: "172.17.0.1",
		},
		{
			name: "malformed lines are skipped",
			table: "eth0\t00000000\n" +
				"eth0\t00000000\tnot-hex\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t" + routeHex("172.17.0.1") + "\tzz\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t" + routeHex("172.17.0.1") + "\t0003\t0\t0\tten\t00000000\t0\t0\t0\n" +
				route("eth0", "0.0.0.0", "10.0.0.2", "0003", "5", "0.0.0.0"),
			want: "10.0.0.2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := defaultGateway(strings.NewReader(routeHeader + tc.table))
			require.NoError(t, err)
			require.Equal(t, netip.MustParseAddr(tc.want), got)
		})
	}
}

func TestDefaultGateway_None(t *testing.T) {
	for _, table := range []string{
		"",
		routeHeader,
		// a container on a network without a gateway
		routeHeader + route("eth0", "172.17.0.0", "0.0.0.0", "0001", "0", "255.255.0.0"),
		// a container on no network, with only the loopback device
		routeHeader + route("lo", "127.0.0.0", "0.0.0.0", "0001", "0", "255.0.0.0"),
	} {
		_, err := defaultGateway(strings.NewReader(table))
		require.ErrorIs(t, err, errNoDefaultRoute, table)
	}
}

func TestReadDefaultGateway_MissingTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "route")
	_, err := readDefaultGateway(path)
	require.ErrorContains(t, err, "failed to read the route table")
	require.ErrorContains(t, err, path)
}

func TestSendEcho_RejectsIPv6(t *testing.T) {
	err := sendEcho(netip.MustParseAddr("::1"))
	require.ErrorContains(t, err, "::1 is not an IPv4 address")
}
