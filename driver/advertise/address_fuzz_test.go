package advertise

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fuzzOrigin is the origin that the fuzz targets pass to ParseAddress.
const fuzzOrigin = "fuzz value"

// addressSeeds are realistic override file contents and metadata bodies:
// accepted addresses in several spellings and values that must be rejected.
var addressSeeds = []string{
	"203.0.113.10",
	"203.0.113.10\n",
	"203.0.113.10\r\n",
	" \t203.0.113.10 \n\n",
	"\xEF\xBB\xBF203.0.113.10\n",
	"2001:db8::10",
	"2001:0db8:0000:0000:0000:0000:0000:0010",
	"::ffff:198.51.100.7",
	"0000:0000:0000:0000:0000:ffff:198.51.100.7",
	"127.0.0.1",
	"::1",
	"",
	" \r\n\t",
	"\xEF\xBB\xBF\n",
	"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><body>404 - Not Found</body></html>",
	"203.0.113.10\n203.0.113.11\n",
	"203.0.113.10:22",
	"[2001:db8::10]:22",
	"203.0.113.0/24",
	"2001:db8::/32",
	"fe80::1%eth0",
	"ssh.example.com",
	"203.0.113.10\x00",
	"0.0.0.0",
	"::",
	"ff02::1",
	"224.0.0.1",
	"203.0.113.010",
	"\xff\xfe2\x000\x003\x00",
	strings.Repeat("2001:db8:", 10),
	"203.0.113.10" + strings.Repeat(" ", maxRawBytes),
	strings.Repeat("\u00e9", 20),
}

// rejectionReasons are the texts that follow the quoted value in a
// rejection error. None of them repeats any part of the value.
var rejectionReasons = map[string]bool{
	"is longer than 4096 bytes": true,
	"is empty":                  true,
	"contains only whitespace":  true,
	"is not an IP address (it looks like an HTML or XML page)": true,
	"has more than one line":                                   true,
	"is longer than 64 bytes":                                  true,
	"is not an IP address":                                     true,
	"is not an IP address (it has a port)":                     true,
	"is not an IP address (it has a prefix length)":            true,
	"is not an IP address (it has a zone)":                     true,
	"is the unspecified address":                               true,
	"is a multicast address":                                   true,
	"is an IPv4 address, but ipv6s must list IPv6 addresses":   true,
	"is not a MAC address such as 0e:49:61:0f:c3:11":           true,
}

// checkRejection fails t unless message is "<origin>: <quoted prefix of raw>
// <reason>", where the quoted prefix unquotes to at most quotedPrefixBytes
// bytes of raw and reason is one of rejectionReasons.
func checkRejection(t *testing.T, message, origin string, raw []byte) {
	t.Helper()

	rest, ok := strings.CutPrefix(message, origin+": ")
	if !ok {
		t.Fatalf("error %q does not start with the origin %q", message, origin)
	}
	quoted, err := strconv.QuotedPrefix(rest)
	if err != nil {
		t.Fatalf("error %q does not quote the value after the origin: %v", message, err)
	}
	unquoted, err := strconv.Unquote(quoted)
	if err != nil {
		t.Fatalf("error %q has a quoted value that does not unquote: %v", message, err)
	}
	if len(raw) > quotedPrefixBytes {
		var cut bool
		unquoted, cut = strings.CutSuffix(unquoted, "...")
		if !cut {
			t.Fatalf("error %q quotes a %d-byte value without the \"...\" mark", message, len(raw))
		}
	}
	if len(unquoted) > quotedPrefixBytes {
		t.Fatalf("error %q quotes %d bytes of the value, more than %d", message, len(unquoted), quotedPrefixBytes)
	}
	if !bytes.HasPrefix(raw, []byte(unquoted)) {
		t.Fatalf("error %q quotes %q, which is not a prefix of the value %q", message, unquoted, raw)
	}

	reason := strings.TrimPrefix(rest[len(quoted):], " ")
	if !rejectionReasons[reason] {
		t.Fatalf("error %q ends with %q, which is not a known rejection reason", message, reason)
	}
}

// checkAccepted fails t unless addr is a valid address that ParseAddress
// may return for raw.
func checkAccepted(t *testing.T, addr netip.Addr, raw []byte) {
	t.Helper()

	if !addr.IsValid() {
		t.Fatalf("ParseAddress(%q) returned the zero address without an error", raw)
	}
	if addr.Zone() != "" || addr.IsUnspecified() || addr.IsMulticast() || addr.Is4In6() {
		t.Fatalf("ParseAddress(%q) = %s, which has a zone, is unspecified or multicast, or is IPv4-mapped", raw, addr)
	}

	// The accepted text is one line of at most maxAddressBytes bytes with
	// no port, zone or prefix length. netip.ParseAddr rejects "host:port".
	value := trimValue(raw)
	if len(value) > maxAddressBytes || bytes.ContainsAny(value, "\r\n") {
		t.Fatalf("ParseAddress(%q) accepted a value of %d bytes or of more than one line", raw, len(value))
	}
	if bytes.ContainsAny(value, "[]/%") {
		t.Fatalf("ParseAddress(%q) accepted a value with a port, zone or prefix length", raw)
	}
	parsed, err := netip.ParseAddr(string(value))
	if err != nil || parsed.Unmap() != addr {
		t.Fatalf("ParseAddress(%q) = %s, but netip.ParseAddr(%q) = %s, %v", raw, addr, value, parsed, err)
	}

	// The formatted address parses back to the same address of the same
	// family, so the ssh command built from it reaches the same host.
	formatted := addr.String()
	again, err := ParseAddress(fuzzOrigin, []byte(formatted))
	if err != nil {
		t.Fatalf("ParseAddress(%q) = %s, but its formatted form is rejected: %v", raw, addr, err)
	}
	if again != addr || again.Is4() != addr.Is4() {
		t.Fatalf("ParseAddress(%q) = %s, but its formatted form parses to %s", raw, addr, again)
	}

	// A trailing newline, as echo writes, does not change the result.
	if len(raw) < maxRawBytes {
		withNewline, err := ParseAddress(fuzzOrigin, append(bytes.Clone(raw), '\n'))
		if err != nil || withNewline != addr {
			t.Fatalf("ParseAddress(%q + \"\\n\") = %s, %v; want %s", raw, withNewline, err, addr)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, seed := range addressSeeds {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		addr, err := ParseAddress(fuzzOrigin, raw)

		if err != nil {
			if addr.IsValid() {
				t.Fatalf("ParseAddress(%q) returned %s with the error %v", raw, addr, err)
			}
			var invalid *invalidValueError
			if !errors.As(err, &invalid) {
				t.Fatalf("ParseAddress(%q) returned %T, not *invalidValueError", raw, err)
			}
			checkRejection(t, err.Error(), fuzzOrigin, raw)
			return
		}
		checkAccepted(t, addr, raw)
	})
}

// bytesOpener returns an openFile that serves content for any name.
func bytesOpener(content []byte) openFile {
	return func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}
}

func FuzzReadOverride(f *testing.F) {
	for _, seed := range addressSeeds {
		f.Add([]byte(seed))
	}
	f.Add([]byte(strings.Repeat("1", maxRawBytes+100)))

	const path = "/etc/circleci/public-ipv4"
	const fix = "; write one IPv4 or IPv6 address to the file, or delete it to use instance metadata"

	f.Fuzz(func(t *testing.T, content []byte) {
		addr, raw, err := readOverride(path, bytesOpener(content))

		// At most one byte more than maxRawBytes is read.
		want := content[:min(len(content), maxRawBytes+1)]
		if !bytes.Equal(raw, want) {
			t.Fatalf("readOverride returned %d raw bytes, want the first %d of the file", len(raw), len(want))
		}

		parsed, parseErr := ParseAddress("override file "+path, want)
		if (err == nil) != (parseErr == nil) || addr != parsed {
			t.Fatalf("readOverride = %s, %v; ParseAddress of the same bytes = %s, %v", addr, err, parsed, parseErr)
		}
		if err == nil {
			checkAccepted(t, addr, want)
			return
		}

		message, ok := strings.CutSuffix(err.Error(), fix)
		if !ok {
			t.Fatalf("error %q does not end with the fix %q", err, fix)
		}
		checkRejection(t, message, "override file "+path, want)
		if len(content) > maxRawBytes && !strings.HasSuffix(message, "is longer than 4096 bytes") {
			t.Fatalf("a %d-byte file was rejected with %q, not as too long", len(content), err)
		}
	})
}

func FuzzFirstListEntry(f *testing.F) {
	for _, seed := range addressSeeds {
		f.Add([]byte(seed))
	}
	for _, seed := range []string{
		"2001:db8::10\n2001:db8::11\n",
		"\n\n  2001:db8::10  \r\n",
		"\xEF\xBB\xBF\n2001:db8::10",
		"203.0.113.10\n2001:db8::10",
		"\t\n \n",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		entry := firstListEntry(raw)
		list := bytes.TrimPrefix(raw, utf8BOM)

		if entry == nil {
			if len(bytes.TrimSpace(list)) != 0 {
				t.Fatalf("firstListEntry(%q) = nil, but the list has a non-blank line", raw)
			}
			return
		}

		if len(entry) == 0 || bytes.IndexByte(entry, '\n') >= 0 || !bytes.Equal(bytes.TrimSpace(entry), entry) {
			t.Fatalf("firstListEntry(%q) = %q, which is empty, has a newline or surrounding whitespace", raw, entry)
		}
		at := bytes.Index(list, entry)
		if at < 0 {
			t.Fatalf("firstListEntry(%q) = %q, which is not in the list", raw, entry)
		}
		if len(bytes.TrimSpace(list[:at])) != 0 {
			t.Fatalf("firstListEntry(%q) = %q, but a non-blank line comes before it", raw, entry)
		}

		// The entry goes to ParseAddress as in the IPv6 lookup, and its
		// errors keep the same form.
		if _, err := ParseAddress(fuzzOrigin, entry); err != nil {
			checkRejection(t, err.Error(), fuzzOrigin, entry)
		}
	})
}

// canonicalMAC is the form of a MAC address that parseMAC returns and that
// becomes one segment of a metadata path.
var canonicalMAC = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)

func FuzzParseMAC(f *testing.F) {
	for _, seed := range []string{
		"0e:49:61:0f:c3:11",
		"0e:49:61:0f:c3:11\n",
		"0E:49:61:0F:C3:11",
		"\xEF\xBB\xBF0e:49:61:0f:c3:11",
		"0e-49-61-0f-c3-11",
		"0e49.610f.c311",
		"e:49:61:f:c3:11",
		"0e:49:61:0f:c3:11:22:33",
		"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
		"0e:49:61:0f:c3:11/../../../latest/api/token",
		"0e:49:61:0f:c3:11\n0e:49:61:0f:c3:12",
		"",
		"<html>404</html>",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		mac, err := parseMAC(fuzzOrigin, raw)
		if err != nil {
			if mac != "" {
				t.Fatalf("parseMAC(%q) returned %q with the error %v", raw, mac, err)
			}
			checkRejection(t, err.Error(), fuzzOrigin, raw)
			return
		}

		if !canonicalMAC.MatchString(mac) {
			t.Fatalf("parseMAC(%q) = %q, which is not a lower-case 6-byte MAC address", raw, mac)
		}
		if !strings.EqualFold(string(trimValue(raw)), mac) {
			t.Fatalf("parseMAC(%q) = %q, which is not the trimmed value", raw, mac)
		}
	})
}
