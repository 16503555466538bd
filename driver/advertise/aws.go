package advertise

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

const metadataMAC = "mac"

// lookup runs the AWS order within one IMDSTimeout: public-ipv4, then
// local-ipv4 after a 404 when the fallback is on, then the IPv6 address of
// the primary network interface. It returns the error of the IPv4 lookup,
// or nil when it found an IPv4 address. A failed IPv6 lookup is a warning.
func (m metadataSource) lookup(ctx context.Context, run *run) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()

	ipv4Err := m.lookupIPv4(ctx, run)

	// After a failure other than a 404 or an invalid value, the service is
	// unreachable or failing, so an IPv6 lookup would only wait for the
	// same failure.
	if outcome := outcomeOf(ipv4Err); outcome == OutcomeFailed {
		run.skip(SourceIMDSIPv6, FamilyIPv6, m.url(metadataMAC), "the IPv4 lookup at the same instance metadata service failed")
		return ipv4Err
	}

	m.lookupIPv6(ctx, run)
	return ipv4Err
}

func (m metadataSource) lookupIPv4(ctx context.Context, run *run) error {
	publicURL, localURL := m.url(metadataPublicIPv4), m.url(metadataLocalIPv4)

	start := time.Now()
	addr, raw, err := m.ipv4Address(ctx, metadataPublicIPv4)
	run.record(SourceIMDSPublic, FamilyIPv4, publicURL, raw, start, err, reasonFor(SourceIMDSPublic))
	if err == nil {
		run.accept(addr, SourceIMDSPublic, publicURL)
		run.warnIfNotPublic(addr, SourceIMDSPublic, publicURL, m.overrideFile)
		run.skip(SourceIMDSLocal, FamilyIPv4, localURL, "public-ipv4 returned an address")
		return nil
	}
	if !isNotFound(err) {
		run.skip(SourceIMDSLocal, FamilyIPv4, localURL, "public-ipv4 did not return 404, and only a 404 from it leads to local-ipv4")
		return err
	}

	if !m.localIPv4Fallback {
		run.skip(SourceIMDSLocal, FamilyIPv4, localURL, "the local-ipv4 fallback is off")
		return fmt.Errorf("%w; the instance has no public IPv4 address, so write the address to advertise to the override file %s or enable the local-ipv4 fallback", err, m.overrideFile)
	}

	start = time.Now()
	addr, raw, err = m.ipv4Address(ctx, metadataLocalIPv4)
	run.record(SourceIMDSLocal, FamilyIPv4, localURL, raw, start, err, reasonFor(SourceIMDSLocal))
	if err != nil {
		return fmt.Errorf("%w (the fallback after public-ipv4 returned 404)", err)
	}
	run.accept(addr, SourceIMDSLocal, localURL)
	return nil
}

// ipv4Address fetches one metadata path that must contain an IPv4 address.
func (m metadataSource) ipv4Address(ctx context.Context, path string) (netip.Addr, []byte, error) {
	addr, raw, err := m.address(ctx, path)
	if err == nil && !addr.Is4() {
		err = fmt.Errorf("%w; write the address to advertise to the override file %s to bypass instance metadata",
			invalidAddress(m.failure(path).origin, raw, "is an IPv6 address, but "+path+" must contain an IPv4 address"), m.overrideFile)
		return netip.Addr{}, raw, err
	}
	return addr, raw, err
}

// lookupIPv6 records the IPv6 step. A 404 means that the instance has no
// IPv6 address, so only the trace shows it. Other failures are warnings.
func (m metadataSource) lookupIPv6(ctx context.Context, run *run) {
	start := time.Now()
	addr, raw, origin, err := m.ipv6Address(ctx)
	run.record(SourceIMDSIPv6, FamilyIPv6, origin, raw, start, err, reasonFor(SourceIMDSIPv6))

	switch {
	case err == nil:
		run.accept(addr, SourceIMDSIPv6, origin)
		run.warnIfNotPublic(addr, SourceIMDSIPv6, origin, m.overrideFile)
	case isNotFound(err):
	default:
		run.warn("looking up the IPv6 address in instance metadata failed, so no IPv6 address is advertised", "error", err)
	}
}

// ipv6Address returns the first address in the ipv6s list of the primary
// network interface, whose MAC address it looks up first. origin is the URL
// of the last request.
func (m metadataSource) ipv6Address(ctx context.Context) (addr netip.Addr, raw []byte, origin string, err error) {
	raw, err = m.fetch(ctx, metadataMAC)
	if err != nil {
		return netip.Addr{}, nil, m.url(metadataMAC), err
	}
	mac, err := parseMAC(m.failure(metadataMAC).origin, raw)
	if err != nil {
		return netip.Addr{}, raw, m.url(metadataMAC), err
	}

	path := "network/interfaces/macs/" + mac + "/ipv6s"
	origin = m.url(path)
	raw, err = m.fetch(ctx, path)
	if err != nil {
		return netip.Addr{}, nil, origin, err
	}

	failureOrigin := m.failure(path).origin
	entry := firstListEntry(raw)
	if entry == nil {
		// ParseAddress names an empty or blank body.
		entry = raw
	}
	addr, err = ParseAddress(failureOrigin, entry)
	if err != nil {
		return netip.Addr{}, raw, origin, err
	}
	if !addr.Is6() {
		return netip.Addr{}, raw, origin, invalidAddress(failureOrigin, entry, "is an IPv4 address, but ipv6s must list IPv6 addresses")
	}
	return addr, raw, origin, nil
}

// parseMAC validates the body of the mac path, which becomes part of the
// next metadata path, and returns it in canonical form.
func parseMAC(origin string, raw []byte) (string, error) {
	text := string(trimValue(raw))
	hardware, err := net.ParseMAC(text)
	if err != nil || len(hardware) != 6 || !strings.EqualFold(text, hardware.String()) {
		return "", invalidAddress(origin, raw, "is not a MAC address such as 0e:49:61:0f:c3:11")
	}
	return hardware.String(), nil
}
