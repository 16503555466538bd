package advertise

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// errEmptyBody is the error for a GCE or Azure response of 200 with an empty
// body, which isNotFound treats like a 404.
var errEmptyBody = errors.New("the response body is empty")

// failureContext holds what the error of a failed metadata request names.
type failureContext struct {
	origin       string // for example "instance metadata public-ipv4 (http://127.0.0.1:1338)"
	service      string // for example "the instance metadata service"
	enableHint   string // how to turn the service on after a 403
	timeout      time.Duration
	overrideFile string
}

// bypass returns the fix that every metadata error offers.
func (f failureContext) bypass() string {
	return "write the address to advertise to the override file " + f.overrideFile
}

// describe prefixes err with the origin and names the failure: a timeout, a
// 404, a 403, another status or a transport error. err stays wrapped, so
// isNotFound works on the result.
func (f failureContext) describe(ctx context.Context, attempts *attemptLog, err error) error {
	summary := attempts.summary()

	if timedOut(ctx, err) {
		after := ""
		if summary != "" {
			after = " after " + summary
		}
		// A GET that returned 200 is the last attempt, so its body was
		// still arriving when the time ran out. The AWS SDK reads the body
		// before GetMetadata returns.
		if last, _, ok := attempts.last(); ok && last.method == http.MethodGet && last.status == http.StatusOK {
			after += ", whose body did not arrive in time"
		}
		return fmt.Errorf("%s: request timed out (IMDS timeout %s)%s; check that %s is reachable from this host, or %s: %w",
			f.origin, f.timeout, after, f.service, f.bypass(), err)
	}

	switch code := statusCode(err); code {
	case 0:
		return fmt.Errorf("%s: request failed; check that %s is reachable from this host, or %s: %w",
			f.origin, f.service, f.bypass(), err)
	case http.StatusNotFound:
		return fmt.Errorf("%s: not found (HTTP 404): %w", f.origin, err)
	case http.StatusForbidden:
		return fmt.Errorf("%s: forbidden (HTTP 403), so %s is turned off or rejects this host; %s, or %s: %w",
			f.origin, f.service, f.enableHint, f.bypass(), err)
	default:
		after := ""
		if _, count, ok := attempts.last(); ok {
			after = " after " + countAttempts(count)
		}
		return fmt.Errorf("%s: request failed with HTTP %d %s%s; check %s, or %s: %w",
			f.origin, code, http.StatusText(code), after, f.service, f.bypass(), err)
	}
}

// describeRead returns the error for a response body that could not be read.
func (f failureContext) describeRead(ctx context.Context, read int, err error) error {
	if timedOut(ctx, err) {
		return fmt.Errorf("%s: reading the response timed out (IMDS timeout %s) after %d bytes; check %s, or %s: %w",
			f.origin, f.timeout, read, f.service, f.bypass(), err)
	}
	return fmt.Errorf("%s: reading the response failed after %d bytes: %w", f.origin, read, err)
}

// timedOut reports whether err, or the context of the request, shows a
// timeout. The AWS SDK reports one as a canceled request or as a transport
// error.
func timedOut(ctx context.Context, err error) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err)
}

// isTimeout reports whether err is a deadline or a network timeout.
func isTimeout(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// statusCode returns the HTTP status that err carries, or 0.
func statusCode(err error) int {
	var statusErr interface{ HTTPStatusCode() int }
	if errors.As(err, &statusErr) {
		return statusErr.HTTPStatusCode()
	}
	return 0
}

// isNotFound reports whether err carries an HTTP 404 response or an empty
// GCE or Azure response body.
func isNotFound(err error) bool {
	return statusCode(err) == http.StatusNotFound || errors.Is(err, errEmptyBody)
}
