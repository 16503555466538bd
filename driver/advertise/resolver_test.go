package advertise

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// testClock is a manual clock for Config.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// closedLoopbackEndpoint is the discard port on 127.0.0.1, where nothing
// listens on the test machines.
const closedLoopbackEndpoint = "http://127.0.0.1:9"

// newTestResolver returns a Resolver that talks to fake and reads an override
// file in a fresh temporary directory, which does not exist until a test
// writes it. edit, when not nil, changes the config first.
func newTestResolver(t testing.TB, fake *fakeIMDS, edit func(*Config)) *Resolver {
	t.Helper()
	return newEndpointResolver(t, fake.URL(), edit)
}

// newEndpointResolver is newTestResolver for any IMDS endpoint on loopback.
func newEndpointResolver(t testing.TB, imdsEndpoint string, edit func(*Config)) *Resolver {
	t.Helper()

	cfg := Config{
		OverrideFile:      filepath.Join(t.TempDir(), "public-ipv4"),
		IMDSEndpoint:      imdsEndpoint,
		LocalIPv4Fallback: true,
		// A test that adds a cloud without its endpoint reaches a closed
		// loopback port, never a real metadata address.
		GCEEndpoint:   closedLoopbackEndpoint,
		AzureEndpoint: closedLoopbackEndpoint,
	}
	if edit != nil {
		edit(&cfg)
	}

	resolver, err := NewResolver(cfg)
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	return resolver
}

func writeOverride(t *testing.T, resolver *Resolver, content string) {
	t.Helper()

	if err := os.WriteFile(resolver.cfg.OverrideFile, []byte(content), 0o644); err != nil {
		t.Fatalf("writing the override file: %v", err)
	}
}

// assertResult checks the address of the family of wantAddress, its source
// and Result.Origin.
func assertResult(t *testing.T, got Result, wantAddress string, wantSource Source, wantOrigin string) {
	t.Helper()

	want := netip.MustParseAddr(wantAddress)
	addr, source, err := got.Address(familyOf(want))
	if err != nil {
		t.Errorf("Address(%s): %v", familyOf(want), err)
	}
	if addr != want {
		t.Errorf("Address(%s) = %s, want %s", familyOf(want), addr, wantAddress)
	}
	if source != wantSource {
		t.Errorf("source = %q, want %q", source, wantSource)
	}
	if got.Origin != wantOrigin {
		t.Errorf("Origin = %q, want %q", got.Origin, wantOrigin)
	}
}

// logTo returns a config edit that sends info and higher logs to logs.
func logTo(logs *syncBuffer) func(*Config) {
	return func(cfg *Config) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})
	}
}

// assertLogLine checks that one line of logs contains every want.
func assertLogLine(t *testing.T, logs *syncBuffer, wants ...string) {
	t.Helper()

	output := logs.String()
	for _, line := range strings.Split(output, "\n") {
		found := true
		for _, want := range wants {
			if !strings.Contains(line, want) {
				found = false
				break
			}
		}
		if found {
			return
		}
	}
	t.Errorf("no log line contains all of %q:\n%s", wants, output)
}

func assertErrorContains(t *testing.T, err error, wants ...string) {
	t.Helper()

	if err == nil {
		t.Fatalf("got no error, want one containing %q", wants)
	}
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q\nwant it to contain %q", err, want)
		}
	}
}

func TestResolve_OverrideBeatsMetadata(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	writeOverride(t, resolver, "203.0.113.7\n")

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "203.0.113.7", SourceOverrideFile, resolver.cfg.OverrideFile)
	if got.ResolvedAt.IsZero() {
		t.Error("ResolvedAt is zero")
	}
	if n := fake.requests(); n != 0 {
		t.Errorf("IMDS got %d requests, want 0", n)
	}
}

func TestResolve_InvalidOverrideIsError(t *testing.T) {
	cases := []struct {
		name      string
		content   string
		wantValue string
	}{
		{name: "HTML page", content: imdsNotFoundPage, wantValue: `"<?xml version=\"1.0\" enco..." is not an IP address`},
		{name: "empty", content: "", wantValue: `"" is empty`},
		{name: "whitespace only", content: " \n", wantValue: `" \n" contains only whitespace`},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeIMDS(t)
			fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
			resolver := newTestResolver(t, fake, nil)
			writeOverride(t, resolver, tc.content)

			_, err := resolver.Resolve(context.Background())

			assertErrorContains(t, err,
				"override file "+resolver.cfg.OverrideFile+": ",
				tc.wantValue,
				"write one IPv4 or IPv6 address to the file")
			if n := fake.requests(); n != 0 {
				t.Errorf("IMDS got %d requests, want 0", n)
			}
		})
	}
}

func TestResolve_MissingOverrideFallsThrough(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	if got.IPv4Source != SourceIMDSPublic {
		t.Errorf("IPv4Source = %q, want %q", got.IPv4Source, SourceIMDSPublic)
	}
	if n := fake.gets("public-ipv4"); n != 1 {
		t.Errorf("public-ipv4 got %d GETs, want 1", n)
	}
}

func TestResolve_PublicIPv4(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
	if n := fake.puts(); n != 1 {
		t.Errorf("token PUTs = %d, want 1", n)
	}
	ttls, withToken, withoutToken := fake.tokenUse()
	if len(ttls) != 1 || ttls[0] == "" {
		t.Errorf("token TTL headers = %q, want one value", ttls)
	}
	// public-ipv4 and mac. The fake has no mac, so the IPv6 lookup stops at
	// its 404.
	if withToken != 2 {
		t.Errorf("GETs with a token = %d, want 2 (public-ipv4 and mac)", withToken)
	}
	if withoutToken != 0 {
		t.Errorf("GETs without a token = %d, want 0", withoutToken)
	}
}

func TestResolve_TokenIsReused(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	for i := 0; i < 3; i++ {
		if _, err := resolver.Resolve(context.Background()); err != nil {
			t.Fatalf("Resolve %d: %v", i+1, err)
		}
	}

	if n := fake.puts(); n != 1 {
		t.Errorf("token PUTs = %d, want 1 for three resolutions", n)
	}
	if n := fake.gets("public-ipv4"); n != 3 {
		t.Errorf("public-ipv4 GETs = %d, want 3", n)
	}
}

func TestResolve_Public404FallsBackToLocal(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusNotFound, body: imdsNotFoundPage}
	fake.replies["local-ipv4"] = metadataReply{status: http.StatusOK, body: "10.0.1.23"}
	resolver := newTestResolver(t, fake, nil)

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "10.0.1.23", SourceIMDSLocal, fake.URL()+"/latest/meta-data/local-ipv4")
	if n := fake.gets("public-ipv4"); n != 1 {
		t.Errorf("public-ipv4 GETs = %d, want 1 (a 404 is not retried)", n)
	}
}

func TestResolve_Public404WithoutFallbackIsError(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusNotFound, body: imdsNotFoundPage}
	fake.replies["local-ipv4"] = metadataReply{status: http.StatusOK, body: "10.0.1.23"}
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.LocalIPv4Fallback = false
	})

	_, err := resolver.Resolve(context.Background())

	assertErrorContains(t, err,
		"instance metadata public-ipv4 ("+fake.URL()+"): not found (HTTP 404)",
		"the instance has no public IPv4 address",
		"write the address to advertise to the override file "+resolver.cfg.OverrideFile,
		"enable the local-ipv4 fallback")
	if n := fake.gets("local-ipv4"); n != 0 {
		t.Errorf("local-ipv4 GETs = %d, want 0", n)
	}
}

func TestResolve_LocalFailureNamesBothPaths(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusNotFound, body: imdsNotFoundPage}
	fake.replies["local-ipv4"] = metadataReply{status: http.StatusOK, body: "not-an-address"}
	resolver := newTestResolver(t, fake, nil)

	_, err := resolver.Resolve(context.Background())

	assertErrorContains(t, err,
		"instance metadata local-ipv4 ("+fake.URL()+"): \"not-an-address\" is not an IP address",
		"after public-ipv4 returned 404")
}

func TestResolve_HTMLBodyWithOKIsRejected(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: imdsNotFoundPage}
	resolver := newTestResolver(t, fake, nil)

	got, err := resolver.Resolve(context.Background())

	assertErrorContains(t, err,
		"instance metadata public-ipv4 ("+fake.URL()+"): ",
		`"<?xml version=\"1.0\" enco..." is not an IP address (it looks like an HTML or XML page)`,
		"write the address to advertise to the override file")
	if got.IPv4.IsValid() {
		t.Errorf("IPv4 = %s, want none", got.IPv4)
	}
}

func TestResolve_HugeBodyIsRejected(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1" + strings.Repeat(" ", 1<<20)}
	resolver := newTestResolver(t, fake, nil)

	_, err := resolver.Resolve(context.Background())

	assertErrorContains(t, err, `"198.51.100.1            ..." is longer than 4096 bytes`)
}

func TestResolve_TokenForbiddenFallsBackToIMDSv1(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.tokenStatus = http.StatusForbidden
	fake.allowIMDSv1 = true
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
	if n := fake.puts(); n != 1 {
		t.Errorf("token PUTs = %d, want 1", n)
	}
	_, withToken, withoutToken := fake.tokenUse()
	if withToken != 0 {
		t.Errorf("GETs with a token = %d, want 0", withToken)
	}
	if withoutToken != 2 {
		t.Errorf("GETs without a token = %d, want 2 (public-ipv4 and mac)", withoutToken)
	}
}

func TestResolve_LostTokenFallsBackToIMDSv1(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.blockTokens = make(chan struct{})
	fake.allowIMDSv1 = true
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
	if n := fake.puts(); n < 1 {
		t.Errorf("token PUTs = %d, want at least 1", n)
	}
	_, _, withoutToken := fake.tokenUse()
	if withoutToken != 2 {
		t.Errorf("GETs without a token = %d, want 2 (public-ipv4 and mac)", withoutToken)
	}
}

func TestResolve_UnauthorizedFetchesFreshToken(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.rejectFirstToken = true
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
	if n := fake.puts(); n != 2 {
		t.Errorf("token PUTs = %d, want 2", n)
	}
	if n := fake.gets("public-ipv4"); n != 2 {
		t.Errorf("public-ipv4 GETs = %d, want 2", n)
	}
}

func TestResolve_UnresponsiveMetadataTimesOut(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.block = make(chan struct{})
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.IMDSTimeout = 300 * time.Millisecond
	})

	start := time.Now()
	_, err := resolver.Resolve(context.Background())
	elapsed := time.Since(start)

	assertErrorContains(t, err,
		"instance metadata public-ipv4 ("+fake.URL()+")",
		"timed out")
	if elapsed > 5*time.Second {
		t.Errorf("Resolve took %s, want it bounded by the 300ms IMDS timeout", elapsed)
	}
}

func TestResolve_CanceledContextIsNotCached(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := resolver.Resolve(ctx)

	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if _, _, ok := resolver.Cached(); ok {
		t.Error("Cached reports a stored outcome, want none after a canceled resolution")
	}
}

func TestResolve_RepeatedFailureWarnsOnce(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "garbage"}
	var logs syncBuffer
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	})

	for i := 0; i < 3; i++ {
		if _, err := resolver.Resolve(context.Background()); err == nil {
			t.Fatalf("Resolve %d returned no error", i+1)
		}
	}

	if n := strings.Count(logs.String(), "[WARN]"); n != 1 {
		t.Errorf("logged %d warnings, want 1:\n%s", n, logs.String())
	}
}

func TestResolve_LogsChangedAddress(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	var logs syncBuffer
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	})

	if _, err := resolver.Resolve(context.Background()); err != nil {
		t.Fatalf("first Resolve: %v", err)
	}
	if _, err := resolver.Resolve(context.Background()); err != nil {
		t.Fatalf("second Resolve: %v", err)
	}
	writeOverride(t, resolver, "203.0.113.7\n")
	if _, err := resolver.Resolve(context.Background()); err != nil {
		t.Fatalf("third Resolve: %v", err)
	}

	output := logs.String()
	if n := strings.Count(output, "[INFO]"); n != 2 {
		t.Errorf("logged %d info lines, want 2 (first address and change):\n%s", n, output)
	}
	if !strings.Contains(output, "ipv4=198.51.100.1 ipv4_source=imds-public") {
		t.Errorf("logs lack the first address and source:\n%s", output)
	}
	if !strings.Contains(output, "old_ipv4=198.51.100.1 ipv4=203.0.113.7") {
		t.Errorf("logs lack the old and new address:\n%s", output)
	}
}

func TestCached_EmptyBeforeResolve(t *testing.T) {
	fake := newFakeIMDS(t)
	resolver := newTestResolver(t, fake, nil)

	_, _, ok := resolver.Cached()

	if ok {
		t.Error("Cached reports ok before the first Resolve")
	}
}

func TestCached_ReturnsLastError(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "garbage"}
	resolver := newTestResolver(t, fake, nil)

	_, resolveErr := resolver.Resolve(context.Background())
	_, cachedErr, ok := resolver.Cached()

	if !ok {
		t.Fatal("Cached reports no outcome after Resolve")
	}
	if cachedErr == nil || cachedErr.Error() != resolveErr.Error() {
		t.Errorf("Cached error = %v, want %v", cachedErr, resolveErr)
	}
}

func TestCurrent_ReturnsCachedWhileFresh(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	clock := newTestClock()
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.Now = clock.Now
	})

	first, err := resolver.Current(context.Background(), time.Minute)
	if err != nil {
		t.Fatalf("first Current: %v", err)
	}
	requestsAfterFirst := fake.requests()
	clock.Advance(59 * time.Second)
	second, err := resolver.Current(context.Background(), time.Minute)
	if err != nil {
		t.Fatalf("second Current: %v", err)
	}

	if !reflect.DeepEqual(second, first) {
		t.Errorf("second Current = %+v, want the cached %+v", second, first)
	}
	if n := fake.requests(); n != requestsAfterFirst {
		t.Errorf("IMDS requests = %d after the second Current, want %d", n, requestsAfterFirst)
	}
}

func TestCurrent_CachesErrorUntilOverrideWritten(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "garbage"}
	resolver := newTestResolver(t, fake, nil)

	_, firstErr := resolver.Current(context.Background(), time.Hour)
	_, secondErr := resolver.Current(context.Background(), time.Hour)

	if firstErr == nil {
		t.Fatal("first Current returned no error")
	}
	if secondErr == nil || secondErr.Error() != firstErr.Error() {
		t.Errorf("second Current error = %v, want the cached %v", secondErr, firstErr)
	}
	if n := fake.gets("public-ipv4"); n != 1 {
		t.Errorf("public-ipv4 GETs = %d, want 1", n)
	}

	writeOverride(t, resolver, "203.0.113.21\n")
	got, err := resolver.Current(context.Background(), time.Hour)
	if err != nil {
		t.Fatalf("Current after writing the file: %v", err)
	}
	assertResult(t, got, "203.0.113.21", SourceOverrideFile, resolver.cfg.OverrideFile)
}

func TestCurrent_ResolvesAgainAfterMaxAge(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	clock := newTestClock()
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.Now = clock.Now
	})

	first, err := resolver.Current(context.Background(), time.Minute)
	if err != nil {
		t.Fatalf("first Current: %v", err)
	}
	clock.Advance(time.Minute)
	second, err := resolver.Current(context.Background(), time.Minute)
	if err != nil {
		t.Fatalf("second Current: %v", err)
	}

	if n := fake.gets("public-ipv4"); n != 2 {
		t.Errorf("public-ipv4 GETs = %d, want 2", n)
	}
	if !second.ResolvedAt.After(first.ResolvedAt) {
		t.Errorf("second ResolvedAt = %s, want after %s", second.ResolvedAt, first.ResolvedAt)
	}
}

func TestCurrent_PicksUpLateOverride(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	path := resolver.cfg.OverrideFile

	first, err := resolver.Current(context.Background(), time.Hour)
	if err != nil {
		t.Fatalf("first Current: %v", err)
	}
	assertResult(t, first, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")

	writeOverride(t, resolver, "203.0.113.21\n")
	second, err := resolver.Current(context.Background(), time.Hour)
	if err != nil {
		t.Fatalf("Current after writing the file: %v", err)
	}
	assertResult(t, second, "203.0.113.21", SourceOverrideFile, path)

	// Same size, so only the new modification time shows the change.
	writeOverride(t, resolver, "203.0.113.22\n")
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatalf("setting the modification time: %v", err)
	}
	third, err := resolver.Current(context.Background(), time.Hour)
	if err != nil {
		t.Fatalf("Current after rewriting the file: %v", err)
	}
	assertResult(t, third, "203.0.113.22", SourceOverrideFile, path)
}

func TestCurrent_RemovedOverrideFallsBackToMetadata(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	writeOverride(t, resolver, "203.0.113.21\n")

	if _, err := resolver.Current(context.Background(), time.Hour); err != nil {
		t.Fatalf("first Current: %v", err)
	}
	if err := os.Remove(resolver.cfg.OverrideFile); err != nil {
		t.Fatalf("removing the override file: %v", err)
	}
	got, err := resolver.Current(context.Background(), time.Hour)
	if err != nil {
		t.Fatalf("Current after removing the file: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
}

func TestCurrent_ConcurrentCallersShareOneResolution(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := resolver.Current(context.Background(), time.Hour)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)

	for err := range errs {
		if err != nil {
			t.Errorf("Current: %v", err)
		}
	}
	if n := fake.gets("public-ipv4"); n != 1 {
		t.Errorf("public-ipv4 GETs = %d, want 1", n)
	}
}

// syncBuffer is a bytes.Buffer that is safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func itoa(n int) string {
	return strconv.Itoa(n)
}

func mustAddr(text string) netip.Addr {
	return netip.MustParseAddr(text)
}

// findStep returns the only step of source in trace.
func findStep(t *testing.T, trace []Step, source Source) Step {
	t.Helper()

	var found []Step
	for _, step := range trace {
		if step.Source == source {
			found = append(found, step)
		}
	}
	if len(found) != 1 {
		t.Fatalf("trace has %d steps of %s, want 1:\n%s", len(found), source, formatTrace(trace))
	}
	return found[0]
}

// assertOutcomes checks the outcome of the step of each source in want.
func assertOutcomes(t *testing.T, trace []Step, want map[Source]string) {
	t.Helper()

	for source, outcome := range want {
		if step := findStep(t, trace, source); step.Outcome != outcome {
			t.Errorf("%s outcome = %q, want %q (reason %q)", source, step.Outcome, outcome, step.Reason)
		}
	}
}

func formatTrace(trace []Step) string {
	var lines []string
	for _, step := range trace {
		lines = append(lines, fmt.Sprintf("  %s %s %s value=%s reason=%q", step.Source, step.Origin, step.Outcome, step.Value, step.Reason))
	}
	return strings.Join(lines, "\n")
}
