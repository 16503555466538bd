package advertise

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

const (
	// The same dial and response header timeouts that imds.New v1.20.9 sets
	// on its default HTTP client, which it skips for a custom client.
	metadataDialTimeout           = 250 * time.Millisecond
	metadataResponseHeaderTimeout = 500 * time.Millisecond

	// metadataIdleConnTimeout closes a kept-alive connection to a metadata
	// service that the next resolution is unlikely to reuse.
	metadataIdleConnTimeout = 30 * time.Second
)

// httpDoer is the method that imds.HTTPClient and *http.Client share.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// newMetadataHTTPClient returns the HTTP client for one metadata service.
//
// It never uses a proxy, because a proxy from HTTP_PROXY would return the
// metadata of its own host, which is a wrong address. It never follows a
// redirect, because metadata must come from the configured endpoint itself,
// so a 3xx response is an error. Every response body is cut after
// maxRawBytes+1 bytes, and every attempt is added to the attemptLog of the
// request's context.
func newMetadataHTTPClient() (limitedBodyClient, *http.Transport) {
	transport := &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   metadataDialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ResponseHeaderTimeout: metadataResponseHeaderTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       metadataIdleConnTimeout,
	}
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return limitedBodyClient{next: client}, transport
}

// limitedBodyClient cuts every response body after maxRawBytes+1 bytes,
// because the AWS SDK reads whole bodies into memory. ParseAddress rejects a
// longer body anyway.
//
// NOTE: token responses are cut at the same limit. AWS documents no maximum
// token length, so a token longer than 4 KiB would be cut and then rejected.
type limitedBodyClient struct {
	next httpDoer
}

func (c limitedBodyClient) Do(request *http.Request) (*http.Response, error) {
	attempts := attemptLogFrom(request.Context())

	response, err := c.next.Do(request)
	if err != nil {
		attempts.add(request, 0, err)
		return nil, err
	}
	attempts.add(request, response.StatusCode, nil)

	response.Body = limitedBody{
		Reader: io.LimitReader(response.Body, maxRawBytes+1),
		Closer: response.Body,
	}
	return response, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// attemptLog records the HTTP attempts of one metadata lookup, retries and
// AWS token requests included, so that an error can name the last status or
// transport error even when the timeout ended the lookup during a backoff.
// A nil *attemptLog records nothing.
type attemptLog struct {
	mu       sync.Mutex
	attempts []attempt
}

type attempt struct {
	method, path string
	status       int   // 0 when err is set
	err          error // the transport error
}

type attemptLogKey struct{}

// withAttemptLog returns a context that carries a new attemptLog.
func withAttemptLog(ctx context.Context) (context.Context, *attemptLog) {
	attempts := &attemptLog{}
	return context.WithValue(ctx, attemptLogKey{}, attempts), attempts
}

func attemptLogFrom(ctx context.Context) *attemptLog {
	attempts, _ := ctx.Value(attemptLogKey{}).(*attemptLog)
	return attempts
}

func (l *attemptLog) add(request *http.Request, status int, err error) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()

	l.attempts = append(l.attempts, attempt{method: request.Method, path: request.URL.Path, status: status, err: err})
}

// last returns the last attempt and the number of attempts with the same
// method and path, or ok false when there was none.
func (l *attemptLog) last() (last attempt, count int, ok bool) {
	if l == nil {
		return attempt{}, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()

	if len(l.attempts) == 0 {
		return attempt{}, 0, false
	}
	last = l.attempts[len(l.attempts)-1]
	for _, a := range l.attempts {
		if a.method == last.method && a.path == last.path {
			count++
		}
	}
	return last, count, true
}

// lastTransportError returns the last attempt before the final one that
// failed with a transport error other than a timeout, such as a refused
// connection, or ok false when there was none.
func (l *attemptLog) lastTransportError() (failed attempt, ok bool) {
	if l == nil {
		return attempt{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()

	for i := len(l.attempts) - 2; i >= 0; i-- {
		if a := l.attempts[i]; a.err != nil && !isTimeout(a.err) {
			return a, true
		}
	}
	return attempt{}, false
}

// summary describes the attempts at the last request, such as "3 attempts
// at GET /latest/meta-data/public-ipv4; the last returned HTTP 503 Service
// Unavailable", or returns "" when there was no attempt. When the timeout
// cut the last attempt short, it also names the last other transport
// error, because that is why the lookup still had no response.
func (l *attemptLog) summary() string {
	last, count, ok := l.last()
	if !ok {
		return ""
	}

	request := last.method + " " + last.path
	if last.err != nil {
		text := fmt.Sprintf("%s at %s; the last failed: %v", countAttempts(count), request, last.err)
		if earlier, ok := l.lastTransportError(); ok && isTimeout(last.err) {
			text += fmt.Sprintf("; an earlier attempt at %s %s failed: %v", earlier.method, earlier.path, earlier.err)
		}
		return text
	}
	return fmt.Sprintf("%s at %s; the last returned HTTP %d %s", countAttempts(count), request, last.status, http.StatusText(last.status))
}

func countAttempts(count int) string {
	if count == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", count)
}
