package advertise

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseAddress_Accepts(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want string
	}{
		{name: "IPv4", raw: "203.0.113.10", want: "203.0.113.10"},
		{name: "IPv6", raw: "2001:db8::10", want: "2001:db8::10"},
		{name: "CRLF", raw: "203.0.113.10\r\n", want: "203.0.113.10"},
		{name: "surrounding whitespace", raw: " \t203.0.113.10 \n\n", want: "203.0.113.10"},
		{name: "BOM", raw: "\xEF\xBB\xBF203.0.113.10\n", want: "203.0.113.10"},
		{name: "IPv4-mapped IPv6", raw: "::ffff:198.51.100.7", want: "198.51.100.7"},
		{name: "loopback", raw: "127.0.0.1", want: "127.0.0.1"},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddress("test value", []byte(tc.raw))
			if err != nil {
				t.Fatalf("ParseAddress(%q) returned error: %v", tc.raw, err)
			}
			if got != netip.MustParseAddr(tc.want) {
				t.Errorf("ParseAddress(%q) = %s, want %s", tc.raw, got, tc.want)
			}
		})
	}
}

func TestParseAddress_Rejects(t *testing.T) {
	cases := []struct {
		name    string
		raw     string
		wantErr string
	}{
		{name: "empty", raw: "", wantErr: `test value: "" is empty`},
		{name: "whitespace only", raw: " \r\n\t", wantErr: `test value: " \r\n\t" contains only whitespace`},
		{name: "BOM only", raw: "\xEF\xBB\xBF\n", wantErr: `test value: "\ufeff\n" contains only whitespace`},
		{name: "HTML page", raw: imdsNotFoundPage, wantErr: `test value: "<?xml version=\"1.0\" enco..." is not an IP address (it looks like an HTML or XML page)`},
		{name: "HTML one line", raw: "<html>404 - Not Found</html>", wantErr: `"<html>404 - Not Found</h..." is not an IP address (it looks like an HTML or XML page)`},
		{name: "two lines", raw: "203.0.113.10\n203.0.113.11\n", wantErr: `test value: "203.0.113.10\n203.0.113.1..." has more than one line`},
		{name: "port", raw: "203.0.113.10:22", wantErr: `test value: "203.0.113.10:22" is not an IP address (it has a port)`},
		{name: "IPv6 port", raw: "[2001:db8::10]:22", wantErr: `is not an IP address (it has a port)`},
		{name: "prefix length", raw: "203.0.113.0/24", wantErr: `test value: "203.0.113.0/24" is not an IP address (it has a prefix length)`},
		{name: "zone", raw: "fe80::1%eth0", wantErr: `test value: "fe80::1%eth0" is not an IP address (it has a zone)`},
		{name: "host name", raw: "ssh.example.com", wantErr: `test value: "ssh.example.com" is not an IP address`},
		{name: "control character", raw: "203.0.113.10\x00", wantErr: `test value: "203.0.113.10\x00" is not an IP address`},
		{name: "unspecified", raw: "0.0.0.0", wantErr: `test value: "0.0.0.0" is the unspecified address`},
		{name: "multicast", raw: "ff02::1", wantErr: `test value: "ff02::1" is a multicast address`},
		{name: "over-long", raw: strings.Repeat("2001:db8:", 10), wantErr: `test value: "2001:db8:2001:db8:2001:d..." is longer than 64 bytes`},
		{name: "over read limit", raw: "203.0.113.10" + strings.Repeat(" ", maxRawBytes), wantErr: `test value: "203.0.113.10            ..." is longer than 4096 bytes`},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddress("test value", []byte(tc.raw))
			if err == nil {
				t.Fatalf("ParseAddress(%q) = %s, want an error", tc.raw, got)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q\nwant it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseAddress_LongValueIsTruncated(t *testing.T) {
	raw := strings.Repeat("a", 200)

	_, err := ParseAddress("test value", []byte(raw))
	if err == nil {
		t.Fatal("ParseAddress returned no error for a 200-byte value")
	}

	if !strings.Contains(err.Error(), `"aaaaaaaaaaaaaaaaaaaaaaaa..."`) {
		t.Errorf("error = %q, want the first 24 bytes quoted and followed by ...", err)
	}
	if strings.Contains(err.Error(), strings.Repeat("a", 25)) {
		t.Errorf("error = %q, want no more than 24 bytes of the value", err)
	}
}

func TestParseAddress_TruncatesAtRuneBoundary(t *testing.T) {
	// 23 ASCII bytes and a 3-byte rune, so byte 24 is inside the rune.
	raw := strings.Repeat("x", 23) + "€€€"

	_, err := ParseAddress("test value", []byte(raw))
	if err == nil {
		t.Fatal("ParseAddress returned no error")
	}

	want := `"` + strings.Repeat("x", 23) + `..."`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
}
