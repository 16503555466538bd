package advertise

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

const (
	testMAC       = "0e:49:61:0f:c3:11"
	testIPv6sPath = "network/interfaces/macs/" + testMAC + "/ipv6s"
)

func TestResolve_IPv6FromMetadata(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	fake.replies["mac"] = metadataReply{status: http.StatusOK, body: testMAC}
	fake.replies[testIPv6sPath] = metadataReply{status: http.StatusOK, body: "2001:db8::10\n2001:db8::11\n"}
	resolver := newTestResolver(t, fake, nil)

	got, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
	addr, source, err := got.Address(FamilyIPv6)
	if err != nil {
		t.Fatalf("Address(ipv6): %v", err)
	}
	if addr != mustAddr("2001:db8::10") {
		t.Errorf("IPv6 = %s, want the first entry 2001:db8::10", addr)
	}
	if source != SourceIMDSIPv6 {
		t.Errorf("IPv6 source = %q, want %q", source, SourceIMDSIPv6)
	}
	if want := fake.URL() + "/latest/meta-data/" + testIPv6sPath; got.IPv6Origin != want {
		t.Errorf("IPv6Origin = %q, want %q", got.IPv6Origin, want)
	}
	step := findStep(t, trace, SourceIMDSIPv6)
	if step.Outcome != OutcomeAccepted || step.Family != FamilyIPv6 {
		t.Errorf("imds-ipv6 step = %+v, want an accepted IPv6 step", step)
	}
	if want := `"2001:db8::10\n2001:db8::1..."`; step.Value != want {
		t.Errorf("imds-ipv6 value = %s, want the raw list cut to 24 bytes, %s", step.Value, want)
	}
}

func TestResolve_IPv6NotFoundIsNotAnError(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	fake.replies["mac"] = metadataReply{status: http.StatusOK, body: testMAC}
	var logs syncBuffer
	resolver := newTestResolver(t, fake, logTo(&logs))

	got, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	if got.IPv6.IsValid() {
		t.Errorf("IPv6 = %s, want none", got.IPv6)
	}
	if n := fake.gets(testIPv6sPath); n != 1 {
		t.Errorf("ipv6s GETs = %d, want 1", n)
	}
	step := findStep(t, trace, SourceIMDSIPv6)
	if step.Outcome != OutcomeNotFound {
		t.Errorf("imds-ipv6 outcome = %q, want %q", step.Outcome, OutcomeNotFound)
	}
	if strings.Contains(logs.String(), "[WARN]") {
		t.Errorf("logged a warning for an instance without IPv6, want none:\n%s", logs.String())
	}
	_, _, addrErr := got.Address(FamilyIPv6)
	assertErrorContains(t, addrErr,
		"no IPv6 address was resolved (imds-ipv6 not found: instance metadata "+testIPv6sPath+" ("+fake.URL()+"): not found (HTTP 404)",
		"connect over IPv4, or give the instance an IPv6 address, or write an IPv6 address to the override file "+resolver.cfg.OverrideFile)
}

// TestResolve_IPv6FailureWarns covers IPv6 lookups that fail while the IPv4
// lookup succeeds: the resolution succeeds without IPv6 and logs a warning.
func TestResolve_IPv6FailureWarns(t *testing.T) {
	cases := []struct {
		name        string
		mac         metadataReply
		ipv6s       metadataReply
		wantErr     string
		wantOutcome string
	}{
		{
			name:        "invalid MAC",
			mac:         metadataReply{status: http.StatusOK, body: "../../public-keys"},
			wantErr:     `instance metadata mac (FAKE): "../../public-keys" is not a MAC address such as 0e:49:61:0f:c3:11`,
			wantOutcome: OutcomeRejected,
		},
		{
			name:        "IPv4 in ipv6s",
			mac:         metadataReply{status: http.StatusOK, body: testMAC + "\n"},
			ipv6s:       metadataReply{status: http.StatusOK, body: "198.51.100.2\n"},
			wantErr:     `instance metadata ` + testIPv6sPath + ` (FAKE): "198.51.100.2" is an IPv4 address, but ipv6s must list IPv6 addresses`,
			wantOutcome: OutcomeRejected,
		},
		{
			name:        "garbage in ipv6s",
			mac:         metadataReply{status: http.StatusOK, body: testMAC},
			ipv6s:       metadataReply{status: http.StatusOK, body: "<html>oops</html>"},
			wantErr:     `instance metadata ` + testIPv6sPath + ` (FAKE): "<html>oops</html>" is not an IP address (it looks like an HTML or XML page)`,
			wantOutcome: OutcomeRejected,
		},
		{
			name:        "empty ipv6s",
			mac:         metadataReply{status: http.StatusOK, body: testMAC},
			ipv6s:       metadataReply{status: http.StatusOK, body: "\n"},
			wantErr:     `instance metadata ` + testIPv6sPath + ` (FAKE): "\n" contains only whitespace`,
			wantOutcome: OutcomeRejected,
		},
		{
			name:        "ipv6s forbidden",
			mac:         metadataReply{status: http.StatusOK, body: testMAC},
			ipv6s:       metadataReply{status: http.StatusForbidden},
			wantErr:     `instance metadata ` + testIPv6sPath + ` (FAKE): forbidden (HTTP 403)`,
			wantOutcome: OutcomeFailed,
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeIMDS(t)
			fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
			fake.replies["mac"] = tc.mac
			if tc.ipv6s.status != 0 {
				fake.replies[testIPv6sPath] = tc.ipv6s
			}
			var logs syncBuffer
			resolver := newTestResolver(t, fake, logTo(&logs))
			wantErr := strings.ReplaceAll(tc.wantErr, "FAKE", fake.URL())

			got, trace, err := resolver.ResolveTrace(context.Background())
			if err != nil {
				t.Fatalf("ResolveTrace: %v", err)
			}

			assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
			if got.IPv6.IsValid() {
				t.Errorf("IPv6 = %s, want none", got.IPv6)
			}
			step := findStep(t, trace, SourceIMDSIPv6)
			if step.Outcome != tc.wantOutcome {
				t.Errorf("imds-ipv6 outcome = %q, want %q", step.Outcome, tc.wantOutcome)
			}
			if !strings.Contains(step.Reason, wantErr) {
				t.Errorf("imds-ipv6 reason = %q\nwant it to contain %q", step.Reason, wantErr)
			}
			// hclog puts the error in quotes and escapes the quotes inside.
			assertLogLine(t, &logs, "[WARN]", "looking up the IPv6 address in instance metadata failed, so no IPv6 address is advertised",
				`error="`+strings.ReplaceAll(wantErr, `"`, `\"`))
			if n := len(fake.requestedPathsExcept("public-ipv4", "mac", testIPv6sPath)); n != 0 {
				t.Errorf("IMDS got requests for other paths: %q", fake.requestedPathsExcept("public-ipv4", "mac", testIPv6sPath))
			}
		})
	}
}

// An IPv6-only instance has neither public-ipv4 nor local-ipv4. The
// resolution succeeds with the IPv6 address and warns that IPv4 is missing.
func TestResolve_IPv6OnlyInstance(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["mac"] = metadataReply{status: http.StatusOK, body: testMAC}
	fake.replies[testIPv6sPath] = metadataReply{status: http.StatusOK, body: "2001:db8::10"}
	var logs syncBuffer
	resolver := newTestResolver(t, fake, logTo(&logs))

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	ipv6sURL := fake.URL() + "/latest/meta-data/" + testIPv6sPath
	assertResult(t, got, "2001:db8::10", SourceIMDSIPv6, ipv6sURL)
	if got.IPv4.IsValid() {
		t.Errorf("IPv4 = %s, want none", got.IPv4)
	}
	_, _, addrErr := got.Address(FamilyIPv4)
	assertErrorContains(t, addrErr,
		"no IPv4 address was resolved (imds-public not found: instance metadata public-ipv4",
		"imds-local not found: instance metadata local-ipv4",
		"connect over IPv6, or write an IPv4 address to the override file "+resolver.cfg.OverrideFile)
	assertLogLine(t, &logs, "[WARN]", "no IPv4 address was resolved, so only the IPv6 address is advertised", "ipv6=2001:db8::10")
	assertLogLine(t, &logs, "[INFO]", "resolved the advertised address", "ipv4=none", "ipv6=2001:db8::10", "ipv6_source=imds-ipv6")
}

// The override file is authoritative: with an IPv4 address in it, metadata
// is not asked for IPv6 either.
func TestResolve_OverrideIPv4SkipsIPv6Lookup(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["mac"] = metadataReply{status: http.StatusOK, body: testMAC}
	fake.replies[testIPv6sPath] = metadataReply{status: http.StatusOK, body: "2001:db8::10"}
	resolver := newTestResolver(t, fake, nil)
	path := resolver.cfg.OverrideFile
	writeOverride(t, resolver, "203.0.113.7\n")

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "203.0.113.7", SourceOverrideFile, path)
	if got.IPv6.IsValid() {
		t.Errorf("IPv6 = %s, want none while the override file exists", got.IPv6)
	}
	if n := fake.requests(); n != 0 {
		t.Errorf("IMDS got %d requests, want 0", n)
	}
	_, _, addrErr := got.Address(FamilyIPv6)
	assertErrorContains(t, addrErr,
		"no IPv6 address was resolved: the override file "+path+" contains the IPv4 address 203.0.113.7, and while the file exists no other source is tried",
		"connect over IPv4, or write an IPv6 address to the file instead")
}

// After the IPv4 lookup failed with a 403, the IPv6 lookup at the same
// service is skipped instead of waiting for the same failure.
func TestResolve_IPv6SkippedAfterIPv4Failure(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.disabled = true
	resolver := newTestResolver(t, fake, nil)

	_, trace, err := resolver.ResolveTrace(context.Background())

	assertErrorContains(t, err, "forbidden (HTTP 403)")
	step := findStep(t, trace, SourceIMDSIPv6)
	if step.Outcome != OutcomeSkipped {
		t.Errorf("imds-ipv6 outcome = %q, want %q", step.Outcome, OutcomeSkipped)
	}
	if n := fake.gets("mac"); n != 0 {
		t.Errorf("mac GETs = %d, want 0", n)
	}
}

func TestFirstListEntry(t *testing.T) {
	cases := []struct {
		raw  string
		want string
	}{
		{raw: "2001:db8::1\n2001:db8::2\n", want: "2001:db8::1"},
		{raw: "\n\n 2001:db8::1\r\n", want: "2001:db8::1"},
		{raw: "\xEF\xBB\xBF2001:db8::1", want: "2001:db8::1"},
		{raw: "2001:db8::1", want: "2001:db8::1"},
		{raw: " \r\n\n", want: ""},
		{raw: "", want: ""},
	}

	for _, tc := range cases {
		if got := string(firstListEntry([]byte(tc.raw))); got != tc.want {
			t.Errorf("firstListEntry(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestParseMAC(t *testing.T) {
	cases := []struct {
		raw     string
		want    string
		wantErr string
	}{
		{raw: "0e:49:61:0f:c3:11", want: "0e:49:61:0f:c3:11"},
		{raw: "0E:49:61:0F:C3:11\n", want: "0e:49:61:0f:c3:11"},
		{raw: "0e-49-61-0f-c3-11", wantErr: `"0e-49-61-0f-c3-11" is not a MAC address`},
		{raw: "0e:49:61:0f:c3:11/../../x", wantErr: `is not a MAC address`},
		{raw: "00:00:5e:00:53:01:02:03", wantErr: `is not a MAC address`},
		{raw: "", wantErr: `"" is not a MAC address`},
	}

	for _, tc := range cases {
		got, err := parseMAC("mac", []byte(tc.raw))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseMAC(%q) = %q, %v; want an error containing %q", tc.raw, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseMAC(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}
