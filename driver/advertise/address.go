package advertise

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"unicode/utf8"
)

const (
	// maxAddressBytes is the maximum length of a value after trimming. The
	// longest IPv6 text form, an IPv4-mapped address with every group written
	// out, is 45 bytes.
	maxAddressBytes = 64

	// maxRawBytes is the maximum number of bytes read from the override file or
	// from one metadata response. Readers read one byte more, so that
	// ParseAddress can tell a value that fits from one that was cut off.
	maxRawBytes = 4096

	// quotedPrefixBytes is the number of bytes of a rejected value that an
	// error message shows.
	quotedPrefixBytes = 24
)

var utf8BOM = []byte("\xEF\xBB\xBF")

// ParseAddress validates one raw value, the content of the override file or a
// metadata response body, and returns the IP address it contains.
//
// Surrounding whitespace, CR/LF and a leading UTF-8 byte order mark are
// trimmed. The rest must be exactly one IPv4 or IPv6 address with no zone, port
// or prefix length. An IPv4-mapped IPv6 address is returned as plain IPv4, and
// the unspecified and multicast addresses are rejected because SSH clients
// cannot connect to them. The error starts with origin and shows the value
// quoted and cut to its first 24 bytes.
func ParseAddress(origin string, raw []byte) (netip.Addr, error) {
	if len(raw) > maxRawBytes {
		return netip.Addr{}, invalidAddress(origin, raw, fmt.Sprintf("is longer than %d bytes", maxRawBytes))
	}

	value := trimValue(raw)

	switch {
	case len(raw) == 0:
		return netip.Addr{}, invalidAddress(origin, raw, "is empty")
	case len(value) == 0:
		return netip.Addr{}, invalidAddress(origin, raw, "contains only whitespace")
	case value[0] == '<':
		return netip.Addr{}, invalidAddress(origin, raw, "is not an IP address (it looks like an HTML or XML page)")
	case bytes.ContainsAny(value, "\r\n"):
		return netip.Addr{}, invalidAddress(origin, raw, "has more than one line")
	case len(value) > maxAddressBytes:
		return netip.Addr{}, invalidAddress(origin, raw, fmt.Sprintf("is longer than %d bytes", maxAddressBytes))
	}

	text := string(value)
	addr, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, invalidAddress(origin, raw, "is not an IP address"+describeNonAddress(text))
	}

	switch {
	case addr.Zone() != "":
		return netip.Addr{}, invalidAddress(origin, raw, "is not an IP address (it has a zone)")
	case addr.IsUnspecified():
		return netip.Addr{}, invalidAddress(origin, raw, "is the unspecified address")
	case addr.IsMulticast():
		return netip.Addr{}, invalidAddress(origin, raw, "is a multicast address")
	}

	return addr.Unmap(), nil
}

// trimValue returns raw without surrounding whitespace, CR/LF and a leading
// UTF-8 byte order mark.
func trimValue(raw []byte) []byte {
	return bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(raw), utf8BOM))
}

// describeNonAddress returns a bracketed hint for text that netip.ParseAddr
// rejected but that is close to an address, or "" when there is no hint.
func describeNonAddress(text string) string {
	if _, err := netip.ParseAddrPort(text); err == nil {
		return " (it has a port)"
	}
	if _, err := netip.ParsePrefix(text); err == nil {
		return " (it has a prefix length)"
	}
	return ""
}

// invalidValueError is the error for a value that was read but is not a
// valid address, which the trace reports as rejected.
type invalidValueError struct {
	message string
}

func (e *invalidValueError) Error() string {
	return e.message
}

// invalidAddress returns the error for a rejected value.
func invalidAddress(origin string, raw []byte, reason string) error {
	return &invalidValueError{message: fmt.Sprintf("%s: %s %s", origin, quotePrefix(raw), reason)}
}

// sharedAddressSpace is 100.64.0.0/10, the carrier-grade NAT range of RFC
// 6598, which netip.Addr.IsPrivate does not cover.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// nonPublicKind returns what kind of non-public address addr is, or "" when
// it may be public. It covers the ranges that SSH users outside the host's
// network can never reach.
func nonPublicKind(addr netip.Addr) string {
	switch {
	case addr.IsPrivate():
		return "private (RFC 1918 or RFC 4193)"
	case sharedAddressSpace.Contains(addr):
		return "shared address space (RFC 6598)"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	}
	return ""
}

// firstListEntry returns the first non-empty line of a newline-separated
// metadata list, such as the ipv6s of a network interface, with its
// surrounding whitespace and any byte order mark trimmed. It returns nil
// when every line is empty.
func firstListEntry(raw []byte) []byte {
	for _, line := range bytes.Split(bytes.TrimPrefix(raw, utf8BOM), []byte("\n")) {
		if entry := bytes.TrimSpace(line); len(entry) > 0 {
			return entry
		}
	}
	return nil
}

// quotePrefix quotes the first quotedPrefixBytes bytes of raw with
// strconv.Quote, so that control characters are visible. A longer value is cut
// at a rune boundary and gets "..." inside the closing quote.
func quotePrefix(raw []byte) string {
	if len(raw) <= quotedPrefixBytes {
		return strconv.Quote(string(raw))
	}

	cut := quotedPrefixBytes
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	quoted := strconv.Quote(string(raw[:cut]))
	return quoted[:len(quoted)-1] + `..."`
}
