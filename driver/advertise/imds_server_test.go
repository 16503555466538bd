package advertise

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
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

// metadataReply is the response of the fake server for one metadata path.
type metadataReply struct {
	status int
	body   string
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

	mu               sync.Mutex
	tokenPuts        int
	tokenTTLs        []string
	metadataGets     map[string]int
	getsWithToken    int
	getsWithoutToken int
	issuedTokens     []string
}

func newFakeIMDS(t *testing.T) *fakeIMDS {
	t.Helper()

	fake := &fakeIMDS{
		replies:      map[string]metadataReply{},
		metadataGets: map[string]int{},
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
	if !ok {
		reply = metadataReply{status: http.StatusNotFound, body: imdsNotFoundPage}
	}
	w.WriteHeader(reply.status)
	fmt.Fprint(w, reply.body)
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
