package advertise

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The metadata fault matrix: every case runs against a server on
// 127.0.0.1, AWS's ec2-metadata-mock where it can produce the case and the
// fakeIMDS httptest server otherwise.

// faultCase is one row of TestResolve_FaultErrors: a fault that ends in an
// error, with the error text, the outcome of the public-ipv4 step and the
// timeout, which bounds the time the resolution may take.
type faultCase struct {
	name string
	// setup configures fake and returns the IMDS endpoint to use, which is
	// fake.URL() unless the case needs another server on loopback.
	setup       func(t *testing.T, fake *fakeIMDS) string
	timeout     time.Duration
	wantErr     func(endpoint string) []string
	wantOutcome string
}

func TestResolve_FaultErrors(t *testing.T) {
	cases := []faultCase{
		{
			name: "403 endpoint disabled",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				fake.disabled = true
				return fake.URL()
			},
			timeout: 5 * time.Second,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): forbidden (HTTP 403), so the instance metadata service is turned off or rejects this host",
					"turn it on with aws ec2 modify-instance-metadata-options --instance-id ID --http-endpoint enabled",
					"or write the address to advertise to the override file",
				}
			},
			wantOutcome: OutcomeFailed,
		},
		{
			name: "429 on every attempt",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				fake.replies["public-ipv4"] = metadataReply{status: http.StatusTooManyRequests, body: "slow down"}
				return fake.URL()
			},
			timeout: 5 * time.Second,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): request failed with HTTP 429 Too Many Requests after 3 attempts",
					"check the instance metadata service, or write the address to advertise to the override file",
				}
			},
			wantOutcome: OutcomeFailed,
		},
		{
			name: "503 on every attempt",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				fake.replies["public-ipv4"] = metadataReply{status: http.StatusServiceUnavailable, body: "unavailable"}
				return fake.URL()
			},
			timeout: 5 * time.Second,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): request failed with HTTP 503 Service Unavailable after 3 attempts",
				}
			},
			wantOutcome: OutcomeFailed,
		},
		{
			name: "connection refused",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				return "http://127.0.0.1:" + itoa(freeLoopbackPort(t))
			},
			timeout: 5 * time.Second,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): request failed; check that the instance metadata service is reachable from this host",
					"connect: connection refused",
				}
			},
			wantOutcome: OutcomeFailed,
		},
		{
			// the timeout ends the SDK's retries, and the error still
			// names the refused connection, not only the cut attempt
			name: "connection refused until the timeout",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				return "http://127.0.0.1:" + itoa(freeLoopbackPort(t))
			},
			timeout: 2 * time.Second,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): request timed out (IMDS timeout 2s)",
					"connect: connection refused",
				}
			},
			wantOutcome: OutcomeFailed,
		},
		{
			name: "accepts and never answers",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				return silentServer(t)
			},
			timeout: 300 * time.Millisecond,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): request timed out (IMDS timeout 300ms)",
					"check that the instance metadata service is reachable from this host",
				}
			},
			wantOutcome: OutcomeFailed,
		},
		{
			name: "body trickles",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1", trickle: 50 * time.Millisecond}
				return fake.URL()
			},
			timeout: 500 * time.Millisecond,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): request timed out (IMDS timeout 500ms) after 1 attempt at GET /latest/meta-data/public-ipv4; the last returned HTTP 200 OK, whose body did not arrive in time",
				}
			},
			wantOutcome: OutcomeFailed,
		},
		{
			name: "1 MiB body",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1" + strings.Repeat(" ", 1<<20)}
				return fake.URL()
			},
			timeout: 5 * time.Second,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): \"198.51.100.1            ...\" is longer than 4096 bytes",
					"write the address to advertise to the override file",
				}
			},
			wantOutcome: OutcomeRejected,
		},
		{
			name: "redirect to another server",
			setup: func(t *testing.T, fake *fakeIMDS) string {
				elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					t.Errorf("the redirect target got %s %s, want no request", r.Method, r.URL.Path)
					io.WriteString(w, "198.51.100.99")
				}))
				t.Cleanup(elsewhere.Close)
				fake.replies["public-ipv4"] = metadataReply{status: http.StatusTemporaryRedirect, location: elsewhere.URL + "/latest/meta-data/public-ipv4"}
				return fake.URL()
			},
			timeout: 5 * time.Second,
			wantErr: func(endpoint string) []string {
				return []string{
					"instance metadata public-ipv4 (" + endpoint + "): request failed with HTTP 307 Temporary Redirect after 1 attempt",
				}
			},
			wantOutcome: OutcomeFailed,
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Parallel, because the retry cases wait for backoffs.
			t.Parallel()
			fake := newFakeIMDS(t)
			endpoint := tc.setup(t, fake)
			resolver := newEndpointResolver(t, endpoint, func(cfg *Config) {
				cfg.IMDSTimeout = tc.timeout
			})

			start := time.Now()
			res, trace, err := resolver.ResolveTrace(context.Background())
			elapsed := time.Since(start)

			assertErrorContains(t, err, tc.wantErr(endpoint)...)
			if res.IPv4.IsValid() || res.IPv6.IsValid() {
				t.Errorf("Result = %+v, want no address", res)
			}
			if limit := tc.timeout + time.Second; elapsed > limit {
				t.Errorf("ResolveTrace took %s, want at most %s (the %s timeout and slack)", elapsed, limit, tc.timeout)
			}
			step := findStep(t, trace, SourceIMDSPublic)
			if step.Outcome != tc.wantOutcome {
				t.Errorf("imds-public outcome = %q, want %q (reason %q)", step.Outcome, tc.wantOutcome, step.Reason)
			}
		})
	}
}

// TestResolve_RetriesWithBackoff covers a server that responds 429 or 503
// twice: the third attempt succeeds, after a backoff, within the timeout.
func TestResolve_RetriesWithBackoff(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(itoa(status), func(t *testing.T) {
			t.Parallel()
			fake := newFakeIMDS(t)
			fake.sequences["public-ipv4"] = []metadataReply{{status: status}, {status: status}}
			fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
			resolver := newTestResolver(t, fake, func(cfg *Config) {
				cfg.IMDSTimeout = 5 * time.Second
			})

			start := time.Now()
			got, err := resolver.Resolve(context.Background())
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}

			assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
			if n := fake.gets("public-ipv4"); n != 3 {
				t.Errorf("public-ipv4 GETs = %d, want 3", n)
			}
			// The SDK's IMDS client waits 1s before each retry
			// (aws-sdk-go-v2 v1.48.0). Half of that shows a backoff and
			// leaves room for a slow machine.
			for i, gap := range fake.getGaps("public-ipv4") {
				if gap < 500*time.Millisecond {
					t.Errorf("gap before retry %d = %s, want at least 500ms of backoff", i+1, gap)
				}
			}
			if elapsed > 5*time.Second {
				t.Errorf("Resolve took %s, want less than the 5s timeout", elapsed)
			}
		})
	}
}

func TestResolve_NotFoundHTMLBodyIsNotFound(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusNotFound, body: imdsNotFoundPage}
	fake.replies["local-ipv4"] = metadataReply{status: http.StatusOK, body: "10.0.1.23"}
	resolver := newTestResolver(t, fake, nil)

	got, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	assertResult(t, got, "10.0.1.23", SourceIMDSLocal, fake.URL()+"/latest/meta-data/local-ipv4")
	public := findStep(t, trace, SourceIMDSPublic)
	if public.Outcome != OutcomeNotFound {
		t.Errorf("imds-public outcome = %q, want %q", public.Outcome, OutcomeNotFound)
	}
	if !strings.Contains(public.Reason, "not found (HTTP 404)") {
		t.Errorf("imds-public reason = %q, want it to name the 404", public.Reason)
	}
	if public.Value != "" {
		t.Errorf("imds-public value = %q, want none, because the HTML body of a 404 is not a value", public.Value)
	}
}

func TestResolve_Token405UsesIMDSv1(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.tokenStatus = http.StatusMethodNotAllowed
	fake.allowIMDSv1 = true
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	var logs syncBuffer
	resolver := newTestResolver(t, fake, logTo(&logs))

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
	if n := fake.puts(); n != 1 {
		t.Errorf("token PUTs = %d, want 1, because a 405 is not retried", n)
	}
	_, withToken, _ := fake.tokenUse()
	if withToken != 0 {
		t.Errorf("GETs with a token = %d, want 0", withToken)
	}
	assertLogLine(t, &logs, "[WARN]", "instance metadata client", "falling back to IMDSv1")
}

func TestLimitedBodyClient_CutsBody(t *testing.T) {
	body := &countingBody{remaining: 1 << 20}
	client := limitedBodyClient{next: doerFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: body}, nil
	})}
	request := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/latest/meta-data/public-ipv4", nil)

	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	read, err := io.Copy(io.Discard, response.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	response.Body.Close()

	if read != maxRawBytes+1 {
		t.Errorf("read %d bytes, want %d", read, maxRawBytes+1)
	}
	if body.read > maxRawBytes+1 {
		t.Errorf("the client read %d bytes of the 1 MiB body, want at most %d", body.read, maxRawBytes+1)
	}
	if !body.closed {
		t.Error("the original body was not closed")
	}
}

// Every metadata client dials directly, so HTTP_PROXY can never send a
// lookup to another host, and follows no redirect.
func TestMetadataHTTPClient_NoProxyNoRedirect(t *testing.T) {
	client, transport := newMetadataHTTPClient()

	if transport.Proxy != nil {
		t.Error("transport.Proxy is set, want nil so that no proxy is used")
	}
	httpClient, ok := client.next.(*http.Client)
	if !ok {
		t.Fatalf("client.next is %T, want *http.Client", client.next)
	}
	if err := httpClient.CheckRedirect(nil, nil); err != http.ErrUseLastResponse {
		t.Errorf("CheckRedirect = %v, want http.ErrUseLastResponse", err)
	}
}

// The 401 case against the real mock: a restarted mock rejects the token
// that the client cached, as IMDS does after the token expires, and the
// client fetches a new one.
func TestResolve_MockRejectedTokenFetchesNewToken(t *testing.T) {
	mock := startMetadataMock(t, map[string]string{"public-ipv4": "203.0.113.9"}, true)
	resolver := newEndpointResolver(t, mock.endpoint, nil)

	if _, err := resolver.Resolve(context.Background()); err != nil {
		t.Fatalf("first Resolve: %v", err)
	}
	mock.restart(t)
	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve after the restart: %v\nmock output:\n%s", err, mock.output.String())
	}

	assertResult(t, got, "203.0.113.9", SourceIMDSPublic, mock.endpoint+"/latest/meta-data/public-ipv4")
	output := mock.output.String()
	if !strings.Contains(output, "Invalid token provided") {
		t.Errorf("the restarted mock logged no rejected token, want the cached token rejected:\n%s", output)
	}
	if !strings.Contains(output, "GenerateToken Received request") {
		t.Errorf("the restarted mock issued no token, want a new token fetched:\n%s", output)
	}
}

func TestResolve_MockTrimsCRLFWhitespaceAndBOM(t *testing.T) {
	mock := startMetadataMock(t, map[string]string{"public-ipv4": "\ufeff203.0.113.9 \t\r\n"}, true)
	resolver := newEndpointResolver(t, mock.endpoint, nil)

	got, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	assertResult(t, got, "203.0.113.9", SourceIMDSPublic, mock.endpoint+"/latest/meta-data/public-ipv4")
	step := findStep(t, trace, SourceIMDSPublic)
	if want := `"\ufeff203.0.113.9 \t\r\n"`; step.Value != want {
		t.Errorf("imds-public value = %s, want the raw value %s", step.Value, want)
	}
}

func TestResolve_MockPrivatePublicIPv4Warns(t *testing.T) {
	mock := startMetadataMock(t, map[string]string{"public-ipv4": "10.0.0.5"}, true)
	var logs syncBuffer
	resolver := newEndpointResolver(t, mock.endpoint, logTo(&logs))

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "10.0.0.5", SourceIMDSPublic, mock.endpoint+"/latest/meta-data/public-ipv4")
	assertLogLine(t, &logs, "[WARN]", "returned a non-public address",
		"source=imds-public", "address=10.0.0.5", `kind="private (RFC 1918 or RFC 4193)"`,
		"fix=\"write the address that users connect to into the override file "+resolver.cfg.OverrideFile+"\"")
}

// The resolution against the real mock with IMDSv2 required: every
// metadata GET needs a token.
func TestResolve_MockIMDSv2Only(t *testing.T) {
	mock := startMetadataMock(t, map[string]string{
		"public-ipv4":           "203.0.113.9",
		"local-ipv4":            "10.0.0.5",
		"mac-ipv6-associations": "2001:db8::9",
	}, true)
	resolver := newEndpointResolver(t, mock.endpoint, nil)

	got, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v\nmock output:\n%s", err, mock.output.String())
	}

	assertResult(t, got, "203.0.113.9", SourceIMDSPublic, mock.endpoint+"/latest/meta-data/public-ipv4")
	if got.IPv6 != mustAddr("2001:db8::9") {
		t.Errorf("IPv6 = %s, want 2001:db8::9 from the ipv6s of the primary interface", got.IPv6)
	}
	if got.IPv6Source != SourceIMDSIPv6 {
		t.Errorf("IPv6Source = %q, want %q", got.IPv6Source, SourceIMDSIPv6)
	}
	wantIPv6Origin := mock.endpoint + "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/ipv6s"
	if got.IPv6Origin != wantIPv6Origin {
		t.Errorf("IPv6Origin = %q, want %q", got.IPv6Origin, wantIPv6Origin)
	}
	assertOutcomes(t, trace, map[Source]string{
		SourceOverrideFile: OutcomeNotFound,
		SourceIMDSPublic:   OutcomeAccepted,
		SourceIMDSLocal:    OutcomeSkipped,
		SourceIMDSIPv6:     OutcomeAccepted,
	})
	if !strings.Contains(mock.output.String(), "Token validated!") {
		t.Errorf("the mock validated no token:\n%s", mock.output.String())
	}
}

// silentServer returns the URL of a server on 127.0.0.1 that accepts
// connections and never reads from them or responds. The test's cleanup
// closes them.
func silentServer(t testing.TB) string {
	t.Helper()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.1: %v", err)
	}

	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()

	t.Cleanup(func() {
		listener.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})
	return "http://" + listener.Addr().String()
}

// countingBody is an endless body that counts the bytes read from it.
type countingBody struct {
	remaining int
	read      int
	closed    bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.remaining == 0 {
		return 0, io.EOF
	}
	n := min(len(p), b.remaining)
	for i := range n {
		p[i] = ' '
	}
	b.remaining -= n
	b.read += n
	return n, nil
}

func (b *countingBody) Close() error {
	b.closed = true
	return nil
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(request *http.Request) (*http.Response, error) {
	return f(request)
}
