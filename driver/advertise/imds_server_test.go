package advertise

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// imdsNotFoundPage is the body that IMDS sends with a 404, for example for
// public-ipv4 on an instance without a public IPv4 address.
const imdsNotFoundPage = `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>
 </body>
</html>
`

// imdsForbiddenPage is a 403 body in the style of imdsNotFoundPage. The
// tests check the status, not this body.
const imdsForbiddenPage = `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>403 - Forbidden</title>
 </head>
 <body>
  <h1>403 - Forbidden</h1>
 </body>
</html>
`

// metadataReply is the response of the fake server for one metadata path.
type metadataReply struct {
	status int
	body   string

	// location, when not "", is sent as the Location header.
	location string

	// trickle, when not 0, sends the body one byte at a time with this
	// delay between bytes, and then keeps sending spaces until the client
	// goes away.
	trickle time.Duration
}

// fakeIMDS is an IMDSv2 server on 127.0.0.1 with per-test knobs. Set the
// knobs before the first request. Every field below mu is guarded by it.
type fakeIMDS struct {
	server *httptest.Server

	// tokenStatus, when not 0, is the status of every token PUT.
	tokenStatus int
	// allowIMDSv1 serves metadata GETs that carry no token.
	allowIMDSv1 bool
	// rejectFirstToken returns 401 for a GET with the first token issued.
	rejectFirstToken bool
	// block, when not nil, makes every handler wait until it is closed.
	block chan struct{}
	// blockTokens, when not nil, makes token PUT handlers wait until it is
	// closed, like a token response dropped by an IMDS hop limit of 1.
	blockTokens chan struct{}
	// replies maps a metadata path, such as "public-ipv4", to its response.
	// Paths without an entry get 404 with imdsNotFoundPage.
	replies map[string]metadataReply
	// sequences maps a metadata path to responses that the first GETs get,
	// one each, before replies applies.
	sequences map[string][]metadataReply
	// disabled returns 403 for every request, token PUTs included, as IMDS
	// does when the instance's metadata endpoint is turned off.
	disabled bool

	mu               sync.Mutex
	tokenPuts        int
	tokenTTLs        []string
	metadataGets     map[string]int
	getTimes         map[string][]time.Time
	getsWithToken    int
	getsWithoutToken int
	issuedTokens     []string
}

func newFakeIMDS(t testing.TB) *fakeIMDS {
	t.Helper()

	fake := &fakeIMDS{
		replies:      map[string]metadataReply{},
		sequences:    map[string][]metadataReply{},
		metadataGets: map[string]int{},
		getTimes:     map[string][]time.Time{},
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.1: %v", err)
	}
	fake.server = httptest.NewUnstartedServer(http.HandlerFunc(fake.serveHTTP))
	fake.server.Listener.Close()
	fake.server.Listener = listener
	fake.server.Start()

	// Cleanups run last-in first-out, so a blocked handler is released
	// before Close waits for it.
	t.Cleanup(fake.server.Close)
	t.Cleanup(func() {
		if fake.block != nil {
			close(fake.block)
		}
		if fake.blockTokens != nil {
			close(fake.blockTokens)
		}
	})
	return fake
}

func (f *fakeIMDS) URL() string {
	return f.server.URL
}

func (f *fakeIMDS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if f.block != nil {
		waitUntilClosed(f.block, r)
		return
	}
	if f.disabled {
		f.mu.Lock()
		if r.URL.Path == "/latest/api/token" {
			f.tokenPuts++
		} else {
			f.metadataGets[strings.TrimPrefix(r.URL.Path, "/latest/meta-data/")]++
		}
		f.mu.Unlock()
		http.Error(w, imdsForbiddenPage, http.StatusForbidden)
		return
	}

	switch {
	case r.URL.Path == "/latest/api/token":
		f.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/latest/meta-data/"):
		f.serveMetadata(w, r, strings.TrimPrefix(r.URL.Path, "/latest/meta-data/"))
	default:
		http.Error(w, imdsNotFoundPage, http.StatusNotFound)
	}
}

// waitUntilClosed returns when block is closed or the client gives up on r.
func waitUntilClosed(block chan struct{}, r *http.Request) {
	select {
	case <-block:
	case <-r.Context().Done():
	}
}

func (f *fakeIMDS) serveToken(w http.ResponseWriter, r *http.Request) {
	if f.blockTokens != nil {
		f.mu.Lock()
		f.tokenPuts++
		f.mu.Unlock()

		waitUntilClosed(f.blockTokens, r)
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()

	f.tokenPuts++
	ttl := r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
	f.tokenTTLs = append(f.tokenTTLs, ttl)

	if r.Method != http.MethodPut {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if f.tokenStatus != 0 {
		w.WriteHeader(f.tokenStatus)
		return
	}
	seconds, err := strconv.Atoi(ttl)
	if err != nil || seconds < 1 || seconds > 21600 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}

	token := fmt.Sprintf("token-%d", len(f.issuedTokens)+1)
	f.issuedTokens = append(f.issuedTokens, token)
	w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", ttl)
	fmt.Fprint(w, token)
}

func (f *fakeIMDS) serveMetadata(w http.ResponseWriter, r *http.Request, path string) {
	f.mu.Lock()
	defer f.mu.Unlock()

	f.metadataGets[path]++
	f.getTimes[path] = append(f.getTimes[path], time.Now())
	token := r.Header.Get("X-aws-ec2-metadata-token")
	if token == "" {
		f.getsWithoutToken++
	} else {
		f.getsWithToken++
	}

	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if !f.tokenAccepted(token) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}

	reply, ok := f.replies[path]
	if sequence := f.sequences[path]; len(sequence) > 0 {
		reply, ok = sequence[0], true
		f.sequences[path] = sequence[1:]
	}
	if !ok {
		reply = metadataReply{status: http.StatusNotFound, body: imdsNotFoundPage}
	}
	if reply.location != "" {
		w.Header().Set("Location", reply.location)
	}
	w.WriteHeader(reply.status)

	if reply.trickle == 0 {
		fmt.Fprint(w, reply.body)
		return
	}
	// Unlock while trickling, so that the test can read the counters.
	f.mu.Unlock()
	defer f.mu.Lock()
	trickleBody(w, r, reply.body, reply.trickle)
}

// trickleBody writes body and then spaces, one byte every delay, until the
// client goes away or 10s have passed.
func trickleBody(w http.ResponseWriter, r *http.Request, body string, delay time.Duration) {
	flusher := w.(http.Flusher)
	ticker := time.NewTicker(delay)
	defer ticker.Stop()
	deadline := time.After(10 * time.Second)

	for i := 0; ; i++ {
		next := byte(' ')
		if i < len(body) {
			next = body[i]
		}
		if _, err := w.Write([]byte{next}); err != nil {
			return
		}
		flusher.Flush()

		select {
		case <-ticker.C:
		case <-r.Context().Done():
			return
		case <-deadline:
			return
		}
	}
}

// tokenAccepted reports whether a GET with token may read metadata. The
// caller holds f.mu.
func (f *fakeIMDS) tokenAccepted(token string) bool {
	if token == "" {
		return f.allowIMDSv1
	}
	for i, issued := range f.issuedTokens {
		if token == issued {
			return !(i == 0 && f.rejectFirstToken)
		}
	}
	return false
}

// requests returns the number of token PUTs and metadata GETs so far.
func (f *fakeIMDS) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()

	total := f.tokenPuts
	for _, count := range f.metadataGets {
		total += count
	}
	return total
}

func (f *fakeIMDS) gets(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()

	return f.metadataGets[path]
}

func (f *fakeIMDS) puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()

	return f.tokenPuts
}

// tokenUse returns the TTL headers of the token PUTs and the numbers of
// metadata GETs with and without a token.
func (f *fakeIMDS) tokenUse() (ttls []string, withToken, withoutToken int) {
	f.mu.Lock()
	defer f.mu.Unlock()

	return append([]string(nil), f.tokenTTLs...), f.getsWithToken, f.getsWithoutToken
}

// getGaps returns the time between consecutive GETs of path.
func (f *fakeIMDS) getGaps(path string) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()

	times := f.getTimes[path]
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	return gaps
}

// requestedPathsExcept returns the metadata paths that got a GET, other than
// the allowed ones.
func (f *fakeIMDS) requestedPathsExcept(allowed ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	var others []string
	for path := range f.metadataGets {
		if !slices.Contains(allowed, path) {
			others = append(others, path)
		}
	}
	return others
}
