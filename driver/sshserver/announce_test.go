package sshserver

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The route tables of these tests are as a little-endian host, such as
// amd64 or arm64, prints them.

const routeHeader = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"

func TestDefaultGateway(t *testing.T) {
	cases := []struct {
		name  string
		table string
		want  string
	}{
		{
			name: "docker bridge",
			table: "eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
			want: "172.17.0.1",
		},
		{
			name: "lowest metric wins",
			table: "eth0\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" +
				"eth1\t00000000\t010013AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
			want: "172.19.0.1",
		},
		{
			name: "routes that are down, direct or not default are skipped",
			table: "eth0\t00000000\t0102A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t000011AC\t010011AC\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
				"eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
			want: "172.17.0.1",
		},
		{
			name: "malformed lines are skipped",
			table: "eth0\t00000000\n" +
				"eth0\t00000000\tnot-hex\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t010011AC\tzz\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t010011AC\t0003\t0\t0\t-1\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t0200000A\t0003\t0\t0\t5\t00000000\t0\t0\t0\n",
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
		// a container on a network without a gateway, or with none
		routeHeader + "eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
		routeHeader + "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n",
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
