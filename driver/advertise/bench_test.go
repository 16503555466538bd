package advertise

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// BenchmarkCurrent_Cached measures Current while the cached result is fresh:
// a mutex, a clock read and a stat of the missing override file, with no
// metadata request.
func BenchmarkCurrent_Cached(b *testing.B) {
	fake := newFakeIMDS(b)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(b, fake, nil)
	ctx := context.Background()
	if _, err := resolver.Current(ctx, time.Hour); err != nil {
		b.Fatalf("Current: %v", err)
	}
	requests := fake.requests()

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := resolver.Current(ctx, time.Hour); err != nil {
			b.Fatalf("Current: %v", err)
		}
	}
	b.StopTimer()

	if n := fake.requests(); n != requests {
		b.Errorf("IMDS got %d requests during the benchmark, want 0", n-requests)
	}
}

// BenchmarkResolve_ColdIMDSv2 measures a first resolution with a new
// Resolver each iteration: building the client, the IMDSv2 token PUT, the
// public-ipv4 GET and the mac GET of the IPv6 lookup, which returns 404,
// against an httptest server on 127.0.0.1.
func BenchmarkResolve_ColdIMDSv2(b *testing.B) {
	fake := newFakeIMDS(b)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	cfg := newTestResolver(b, fake, nil).cfg
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		resolver, err := NewResolver(cfg)
		if err != nil {
			b.Fatalf("NewResolver: %v", err)
		}
		if _, err := resolver.Resolve(ctx); err != nil {
			b.Fatalf("Resolve: %v", err)
		}
		resolver.closeIdleConnections()
	}
	b.StopTimer()

	if puts, gets := fake.puts(), fake.gets("public-ipv4"); puts != gets {
		b.Errorf("token PUTs = %d for %d resolutions, want one each", puts, gets)
	}
}

// BenchmarkResolve_Unresponsive measures a resolution against a server that
// accepts connections and never responds, with a 50ms IMDS timeout, so each
// iteration takes at least 50ms.
func BenchmarkResolve_Unresponsive(b *testing.B) {
	endpoint := silentServer(b)
	resolver := newEndpointResolver(b, endpoint, func(cfg *Config) {
		cfg.IMDSTimeout = 50 * time.Millisecond
	})
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		if _, err := resolver.Resolve(ctx); err == nil {
			b.Fatal("Resolve returned no error from a server that never answers")
		}
	}
}
