package advertise

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// cloudReply is the response of a fakeCloud.
type cloudReply struct {
	status int
	body   string
	// noFlavor leaves out the Metadata-Flavor response header of GCE.
	noFlavor bool
	// silent makes the handler wait until the client goes away.
	silent bool
}

// fakeCloud is a GCE or Azure metadata server on 127.0.0.1. It returns 404
// for any other path and query and 400 when the required header is missing,
// and records both as bad requests.
type fakeCloud struct {
	server      *httptest.Server
	requestURI  string
	header      string
	headerValue string
	flavor      string // the Metadata-Flavor response header, "" for none

	mu          sync.Mutex
	sequence    []cloudReply // replies for the first requests, one each
	reply       cloudReply
	requests    int
	times       []time.Time
	badRequests []string
}

func newFakeGCE(t *testing.T, reply cloudReply) *fakeCloud {
	return startFakeCloud(t, &fakeCloud{
		requestURI:  gcePath,
		header:      "Metadata-Flavor",
		headerValue: "Google",
		flavor:      "Google",
		reply:       reply,
	})
}

func newFakeAzure(t *testing.T, reply cloudReply) *fakeCloud {
	return startFakeCloud(t, &fakeCloud{
		requestURI:  azurePath,
		header:      "Metadata",
		headerValue: "true",
		reply:       reply,
	})
}

func startFakeCloud(t *testing.T, fake *fakeCloud) *fakeCloud {
	t.Helper()

	fake.server = httptest.NewServer(http.HandlerFunc(fake.serveHTTP))
	t.Cleanup(fake.server.Close)
	t.Cleanup(func() {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if len(fake.badRequests) > 0 {
			t.Errorf("the fake cloud got bad requests: %q", fake.badRequests)
		}
	})
	return fake
}

func (f *fakeCloud) URL() string {
	return f.server.URL
}

func (f *fakeCloud) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.times = append(f.times, time.Now())
	reply := f.reply
	if len(f.sequence) > 0 {
		reply, f.sequence = f.sequence[0], f.sequence[1:]
	}
	if r.Method != http.MethodGet || r.URL.RequestURI() != f.requestURI {
		f.badRequests = append(f.badRequests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	if r.Header.Get(f.header) != f.headerValue {
		f.badRequests = append(f.badRequests, fmt.Sprintf("%s: %q", f.header, r.Header.Get(f.header)))
		f.mu.Unlock()
		http.Error(w, "missing the metadata header", http.StatusBadRequest)
		return
	}
	f.mu.Unlock()

	if reply.silent {
		<-r.Context().Done()
		return
	}
	if f.flavor != "" && !reply.noFlavor {
		w.Header().Set("Metadata-Flavor", f.flavor)
	}
	w.WriteHeader(reply.status)
	fmt.Fprint(w, reply.body)
}

func (f *fakeCloud) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *fakeCloud) gaps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()

	var gaps []time.Duration
	for i := 1; i < len(f.times); i++ {
		gaps = append(gaps, f.times[i].Sub(f.times[i-1]))
	}
	return gaps
}

// newCloudResolver returns a Resolver that tries only the cloud of fake.
// The AWS endpoint is a closed loopback port that no lookup reaches.
func newCloudResolver(t *testing.T, cloud string, fake *fakeCloud, edit func(*Config)) *Resolver {
	t.Helper()

	return newEndpointResolver(t, closedLoopbackEndpoint, func(cfg *Config) {
		cfg.Clouds = []string{cloud}
		if cloud == CloudGCE {
			cfg.GCEEndpoint = fake.URL()
		} else {
			cfg.AzureEndpoint = fake.URL()
		}
		if edit != nil {
			edit(cfg)
		}
	})
}

func cloudSource(cloud string) Source {
	if cloud == CloudGCE {
		return SourceGCE
	}
	return SourceAzure
}

func newFakeCloud(t *testing.T, cloud string, reply cloudReply) *fakeCloud {
	if cloud == CloudGCE {
		return newFakeGCE(t, reply)
	}
	return newFakeAzure(t, reply)
}

func TestResolve_CloudPublicIPv4(t *testing.T) {
	for _, cloud := range []string{CloudGCE, CloudAzure} {
		t.Run(cloud, func(t *testing.T) {
			fake := newFakeCloud(t, cloud, cloudReply{status: http.StatusOK, body: "203.0.113.20\n"})
			resolver := newCloudResolver(t, cloud, fake, nil)

			got, trace, err := resolver.ResolveTrace(context.Background())
			if err != nil {
				t.Fatalf("ResolveTrace: %v", err)
			}

			assertResult(t, got, "203.0.113.20", cloudSource(cloud), fake.URL()+fake.requestURI)
			if got.IPv6.IsValid() {
				t.Errorf("IPv6 = %s, want none, because only AWS is asked for IPv6", got.IPv6)
			}
			if n := fake.requestCount(); n != 1 {
				t.Errorf("requests = %d, want 1", n)
			}
			if len(trace) != 2 {
				t.Errorf("trace has %d steps, want the override file and %s:\n%s", len(trace), cloud, formatTrace(trace))
			}
			assertOutcomes(t, trace, map[Source]string{
				SourceOverrideFile: OutcomeNotFound,
				cloudSource(cloud): OutcomeAccepted,
			})
		})
	}
}

// TestResolve_CloudFaults runs the validation and limits that AWS has
// against GCE and Azure.
func TestResolve_CloudFaults(t *testing.T) {
	cases := []struct {
		name        string
		clouds      []string
		reply       cloudReply
		timeout     time.Duration
		wantErr     string // after the origin, such as "GCE metadata external-ip (URL): "
		wantOutcome string
	}{
		{
			name:        "404",
			reply:       cloudReply{status: http.StatusNotFound, body: "not found"},
			wantErr:     `not found (HTTP 404): HTTP 404 Not Found, body "not found"`,
			wantOutcome: OutcomeNotFound,
		},
		{
			name:        "empty body",
			reply:       cloudReply{status: http.StatusOK, body: ""},
			wantErr:     "the response body is empty, so the instance has no public IPv4 address; write the address to advertise to the override file",
			wantOutcome: OutcomeNotFound,
		},
		{
			name:        "HTML body",
			reply:       cloudReply{status: http.StatusOK, body: imdsNotFoundPage},
			wantErr:     `"<?xml version=\"1.0\" enco..." is not an IP address (it looks like an HTML or XML page); write the address to advertise to the override file`,
			wantOutcome: OutcomeRejected,
		},
		{
			name:        "IPv6 address",
			reply:       cloudReply{status: http.StatusOK, body: "2001:db8::20"},
			wantErr:     `"2001:db8::20" is an IPv6 address, but this metadata path must contain an IPv4 address`,
			wantOutcome: OutcomeRejected,
		},
		{
			name:        "1 MiB body",
			reply:       cloudReply{status: http.StatusOK, body: "203.0.113.20" + strings.Repeat(" ", 1<<20)},
			wantErr:     `"203.0.113.20            ..." is longer than 4096 bytes`,
			wantOutcome: OutcomeRejected,
		},
		{
			name:        "400",
			reply:       cloudReply{status: http.StatusBadRequest, body: "bad request"},
			wantErr:     `request failed with HTTP 400 Bad Request after 1 attempt; check`,
			wantOutcome: OutcomeFailed,
		},
		{
			name:        "403",
			reply:       cloudReply{status: http.StatusForbidden},
			wantErr:     `forbidden (HTTP 403), so the`,
			wantOutcome: OutcomeFailed,
		},
		{
			name:        "redirect",
			reply:       cloudReply{status: http.StatusFound, body: ""},
			wantErr:     `request failed with HTTP 302 Found after 1 attempt`,
			wantOutcome: OutcomeFailed,
		},
		{
			name:        "never answers",
			reply:       cloudReply{silent: true},
			timeout:     300 * time.Millisecond,
			wantErr:     `request timed out (IMDS timeout 300ms) after 1 attempt at GET `,
			wantOutcome: OutcomeFailed,
		},
		{
			name:        "missing Metadata-Flavor",
			clouds:      []string{CloudGCE},
			reply:       cloudReply{status: http.StatusOK, body: "203.0.113.20", noFlavor: true},
			wantErr:     "the response lacks the header Metadata-Flavor: Google, so it did not come from the GCE metadata server",
			wantOutcome: OutcomeRejected,
		},
	}

	for _, tc := range cases {
		clouds := tc.clouds
		if clouds == nil {
			clouds = []string{CloudGCE, CloudAzure}
		}
		for _, cloud := range clouds {
			t.Run(tc.name+"/"+cloud, func(t *testing.T) {
				fake := newFakeCloud(t, cloud, tc.reply)
				resolver := newCloudResolver(t, cloud, fake, func(cfg *Config) {
					if tc.timeout != 0 {
						cfg.IMDSTimeout = tc.timeout
					}
				})
				origin := "GCE metadata external-ip (" + fake.URL() + "): "
				if cloud == CloudAzure {
					origin = "Azure instance metadata publicIpAddress (" + fake.URL() + "): "
				}

				start := time.Now()
				_, trace, err := resolver.ResolveTrace(context.Background())
				elapsed := time.Since(start)

				assertErrorContains(t, err, origin+tc.wantErr)
				step := findStep(t, trace, cloudSource(cloud))
				if step.Outcome != tc.wantOutcome {
					t.Errorf("%s outcome = %q, want %q (reason %q)", cloud, step.Outcome, tc.wantOutcome, step.Reason)
				}
				if tc.timeout != 0 && elapsed > tc.timeout+time.Second {
					t.Errorf("ResolveTrace took %s, want it bounded by the %s timeout", elapsed, tc.timeout)
				}
			})
		}
	}
}

func TestResolve_CloudRetriesWithBackoff(t *testing.T) {
	fake := newFakeAzure(t, cloudReply{status: http.StatusOK, body: "203.0.113.21"})
	fake.sequence = []cloudReply{{status: http.StatusTooManyRequests}, {status: http.StatusServiceUnavailable}}
	resolver := newCloudResolver(t, CloudAzure, fake, nil)

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "203.0.113.21", SourceAzure, fake.URL()+azurePath)
	if n := fake.requestCount(); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	for i, gap := range fake.gaps() {
		if gap < 500*time.Millisecond {
			t.Errorf("gap before retry %d = %s, want the 1s backoff", i+1, gap)
		}
	}
}

func TestResolve_CloudAlwaysFailingNamesStatus(t *testing.T) {
	fake := newFakeGCE(t, cloudReply{status: http.StatusServiceUnavailable})
	resolver := newCloudResolver(t, CloudGCE, fake, nil)

	start := time.Now()
	_, err := resolver.Resolve(context.Background())
	elapsed := time.Since(start)

	assertErrorContains(t, err, "GCE metadata external-ip ("+fake.URL()+"): request failed with HTTP 503 Service Unavailable after 3 attempts")
	if elapsed > DefaultIMDSTimeout {
		t.Errorf("Resolve took %s, want less than the %s timeout", elapsed, DefaultIMDSTimeout)
	}
}

// The first cloud that returns an address wins, and the clouds after it are
// not asked.
func TestResolve_CloudOrder(t *testing.T) {
	t.Run("gce before aws", func(t *testing.T) {
		aws := newFakeIMDS(t)
		aws.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
		gce := newFakeGCE(t, cloudReply{status: http.StatusOK, body: "203.0.113.20"})
		resolver := newTestResolver(t, aws, func(cfg *Config) {
			cfg.Clouds = []string{CloudGCE, CloudAWS}
			cfg.GCEEndpoint = gce.URL()
		})

		got, trace, err := resolver.ResolveTrace(context.Background())
		if err != nil {
			t.Fatalf("ResolveTrace: %v", err)
		}

		assertResult(t, got, "203.0.113.20", SourceGCE, gce.URL()+gcePath)
		if n := aws.requests(); n != 0 {
			t.Errorf("AWS IMDS got %d requests, want 0", n)
		}
		assertOutcomes(t, trace, map[Source]string{
			SourceGCE:        OutcomeAccepted,
			SourceIMDSPublic: OutcomeSkipped,
			SourceIMDSLocal:  OutcomeSkipped,
			SourceIMDSIPv6:   OutcomeSkipped,
		})
		if got := sourcesOf(trace); got != "override-file gce-external imds-public imds-local imds-ipv6" {
			t.Errorf("trace sources = %s, want the order of the clouds list", got)
		}
	})

	t.Run("aws without address then azure", func(t *testing.T) {
		aws := newFakeIMDS(t)
		azure := newFakeAzure(t, cloudReply{status: http.StatusOK, body: "203.0.113.21"})
		resolver := newTestResolver(t, aws, func(cfg *Config) {
			cfg.Clouds = []string{CloudAWS, CloudAzure}
			cfg.AzureEndpoint = azure.URL()
			cfg.LocalIPv4Fallback = false
		})

		got, trace, err := resolver.ResolveTrace(context.Background())
		if err != nil {
			t.Fatalf("ResolveTrace: %v", err)
		}

		assertResult(t, got, "203.0.113.21", SourceAzure, azure.URL()+azurePath)
		assertOutcomes(t, trace, map[Source]string{
			SourceIMDSPublic: OutcomeNotFound,
			SourceIMDSLocal:  OutcomeSkipped,
			SourceIMDSIPv6:   OutcomeNotFound,
			SourceAzure:      OutcomeAccepted,
		})
	})
}

func TestResolve_AllCloudsFailJoinsErrors(t *testing.T) {
	aws := newFakeIMDS(t)
	gce := newFakeGCE(t, cloudReply{status: http.StatusNotFound})
	azure := newFakeAzure(t, cloudReply{status: http.StatusOK, body: ""})
	resolver := newTestResolver(t, aws, func(cfg *Config) {
		cfg.Clouds = []string{CloudAWS, CloudGCE, CloudAzure}
		cfg.GCEEndpoint = gce.URL()
		cfg.AzureEndpoint = azure.URL()
	})

	_, err := resolver.Resolve(context.Background())

	assertErrorContains(t, err,
		"instance metadata local-ipv4 ("+aws.URL()+"): not found (HTTP 404)",
		"; then GCE metadata external-ip ("+gce.URL()+"): not found (HTTP 404)",
		"; then Azure instance metadata publicIpAddress ("+azure.URL()+"): the response body is empty")
}

func TestResolve_CloudPrivateAddressWarns(t *testing.T) {
	fake := newFakeAzure(t, cloudReply{status: http.StatusOK, body: "100.64.1.2"})
	var logs syncBuffer
	resolver := newCloudResolver(t, CloudAzure, fake, logTo(&logs))

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "100.64.1.2", SourceAzure, fake.URL()+azurePath)
	assertLogLine(t, &logs, "[WARN]", "returned a non-public address", "source=azure-public", "address=100.64.1.2", `kind="shared address space (RFC 6598)"`)
}

func sourcesOf(trace []Step) string {
	var sources []string
	for _, step := range trace {
		sources = append(sources, string(step.Source))
	}
	return strings.Join(sources, " ")
}
