package advertise

import (
	"net/netip"
	"testing"
)

func TestResultAddress(t *testing.T) {
	res := Result{
		IPv4:       mustAddr("198.51.100.1"),
		IPv4Source: SourceIMDSPublic,
		IPv6:       mustAddr("2001:db8::1"),
		IPv6Source: SourceIMDSIPv6,
	}

	cases := []struct {
		family     Family
		wantAddr   string
		wantSource Source
	}{
		{family: FamilyIPv4, wantAddr: "198.51.100.1", wantSource: SourceIMDSPublic},
		{family: FamilyIPv6, wantAddr: "2001:db8::1", wantSource: SourceIMDSIPv6},
	}
	for _, tc := range cases {
		addr, source, err := res.Address(tc.family)
		if err != nil {
			t.Errorf("Address(%s): %v", tc.family, err)
			continue
		}
		if addr != mustAddr(tc.wantAddr) || source != tc.wantSource {
			t.Errorf("Address(%s) = %s, %q; want %s, %q", tc.family, addr, source, tc.wantAddr, tc.wantSource)
		}
	}
}

func TestResultAddress_Errors(t *testing.T) {
	overrideTrace := []Step{{Source: SourceOverrideFile, Origin: "/etc/circleci/public-ipv4", Outcome: OutcomeAccepted}}
	metadataTrace := []Step{
		{Source: SourceOverrideFile, Origin: "/etc/circleci/public-ipv4", Outcome: OutcomeNotFound, Reason: "the file does not exist, so metadata is used"},
		{Source: SourceIMDSPublic, Family: FamilyIPv4, Outcome: OutcomeAccepted},
		{Source: SourceIMDSIPv6, Family: FamilyIPv6, Outcome: OutcomeFailed, Reason: "request timed out"},
	}

	cases := []struct {
		name    string
		res     Result
		family  Family
		wantErr string
	}{
		{
			name:    "unsupported family",
			res:     Result{IPv4: mustAddr("198.51.100.1")},
			family:  "IPv4",
			wantErr: `address family "IPv4" is not supported; use "ipv4" or "ipv6"`,
		},
		{
			name:    "IPv6 with an IPv4 override",
			res:     Result{IPv4: mustAddr("203.0.113.7"), IPv4Source: SourceOverrideFile, Origin: "/etc/circleci/public-ipv4", Trace: overrideTrace},
			family:  FamilyIPv6,
			wantErr: "no IPv6 address was resolved: the override file /etc/circleci/public-ipv4 contains the IPv4 address 203.0.113.7, and while the file exists no other source is tried; connect over IPv4, or write an IPv6 address to the file instead",
		},
		{
			name:    "IPv4 with an IPv6 override",
			res:     Result{IPv6: mustAddr("2001:db8::7"), IPv6Source: SourceOverrideFile, Origin: "/etc/circleci/public-ipv4", Trace: overrideTrace},
			family:  FamilyIPv4,
			wantErr: "no IPv4 address was resolved: the override file /etc/circleci/public-ipv4 contains the IPv6 address 2001:db8::7, and while the file exists no other source is tried; connect over IPv6, or write an IPv4 address to the file instead",
		},
		{
			name:    "IPv6 lookup failed",
			res:     Result{IPv4: mustAddr("198.51.100.1"), IPv4Source: SourceIMDSPublic, Trace: metadataTrace},
			family:  FamilyIPv6,
			wantErr: "no IPv6 address was resolved (imds-ipv6 failed: request timed out); connect over IPv4, or give the instance an IPv6 address, or write an IPv6 address to the override file /etc/circleci/public-ipv4",
		},
		{
			name:    "zero Result",
			res:     Result{},
			family:  FamilyIPv4,
			wantErr: "no IPv4 address was resolved; connect over IPv6, or write an IPv4 address to the override file (see Config.OverrideFile)",
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, source, err := tc.res.Address(tc.family)

			if err == nil {
				t.Fatalf("Address(%s) = %s, %q; want an error", tc.family, addr, source)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("error = %q\nwant    %q", err, tc.wantErr)
			}
			if addr != (netip.Addr{}) || source != "" {
				t.Errorf("Address(%s) = %s, %q with the error; want the zero Addr and no source", tc.family, addr, source)
			}
		})
	}
}

func TestNonPublicKind(t *testing.T) {
	cases := []struct {
		addr string
		want string
	}{
		{addr: "10.0.0.5", want: "private (RFC 1918 or RFC 4193)"},
		{addr: "172.16.0.1", want: "private (RFC 1918 or RFC 4193)"},
		{addr: "192.168.1.1", want: "private (RFC 1918 or RFC 4193)"},
		{addr: "fd00::1", want: "private (RFC 1918 or RFC 4193)"},
		{addr: "100.64.0.1", want: "shared address space (RFC 6598)"},
		{addr: "127.0.0.1", want: "loopback"},
		{addr: "::1", want: "loopback"},
		{addr: "fe80::1", want: "link-local"},
		{addr: "203.0.113.7", want: ""},
		{addr: "198.51.100.7", want: ""},
		{addr: "2001:db8::7", want: ""},
		{addr: "172.32.0.1", want: ""},
	}

	for _, tc := range cases {
		if got := nonPublicKind(mustAddr(tc.addr)); got != tc.want {
			t.Errorf("nonPublicKind(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestSourceValues(t *testing.T) {
	// The driver publishes these strings as node attributes, so they are
	// part of the API.
	want := map[Source]string{
		SourceOverrideFile: "override-file",
		SourceIMDSPublic:   "imds-public",
		SourceIMDSLocal:    "imds-local",
		SourceIMDSIPv6:     "imds-ipv6",
		SourceGCE:          "gce-external",
		SourceAzure:        "azure-public",
	}
	for source, text := range want {
		if string(source) != text {
			t.Errorf("source %q, want %q", source, text)
		}
	}
	if FamilyIPv4 != "ipv4" || FamilyIPv6 != "ipv6" {
		t.Errorf("families = %q, %q; want ipv4, ipv6", FamilyIPv4, FamilyIPv6)
	}
}
