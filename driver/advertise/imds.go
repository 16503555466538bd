package advertise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/logging"
	"github.com/hashicorp/go-hclog"
)

const (
	metadataPublicIPv4 = "public-ipv4"
	metadataLocalIPv4  = "local-ipv4"

	// The same dial and response header timeouts that imds.New v1.20.9 sets
	// on its default HTTP client, which it skips for a custom client.
	imdsDialTimeout           = 250 * time.Millisecond
	imdsResponseHeaderTimeout = 500 * time.Millisecond
)

// newIMDSClient builds the one long-lived client of a Resolver, so that the
// SDK caches the IMDSv2 token and its IMDSv1 fallback state across
// resolutions.
//
// The SDK's retry quota is turned off because it is shared by every call of
// the client: after a long outage an empty quota would stop the retry that
// fetches a fresh token after a 401. Each resolution still gets the SDK's
// standard three attempts, bounded by Config.IMDSTimeout.
func newIMDSClient(endpoint string, logger hclog.Logger) *imds.Client {
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(dialer *net.Dialer) {
			dialer.Timeout = imdsDialTimeout
		}).
		WithTransportOptions(func(transport *http.Transport) {
			transport.ResponseHeaderTimeout = imdsResponseHeaderTimeout
		})

	return imds.New(imds.Options{
		Endpoint:   endpoint,
		HTTPClient: limitedBodyClient{next: httpClient},
		Retryer: retry.NewStandard(func(options *retry.StandardOptions) {
			options.RateLimiter = ratelimit.None
		}),
		Logger: sdkLogger(logger),
	})
}

// limitedBodyClient cuts every response body after maxRawBytes+1 bytes,
// because the SDK reads whole bodies into memory. ParseAddress rejects a
// longer body anyway.
//
// NOTE: token responses are cut at the same limit. AWS documents no maximum
// token length, so a token longer than 4 KiB would be cut and then rejected.
type limitedBodyClient struct {
	next imds.HTTPClient
}

func (c limitedBodyClient) Do(request *http.Request) (*http.Response, error) {
	response, err := c.next.Do(request)
	if err != nil {
		return nil, err
	}

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

// sdkLogger forwards SDK log messages, such as the warning when it falls back
// to IMDSv1, to logger.
func sdkLogger(logger hclog.Logger) logging.Logger {
	return logging.LoggerFunc(func(classification logging.Classification, format string, args ...any) {
		message := fmt.Sprintf(format, args...)
		if classification == logging.Warn {
			logger.Warn("instance metadata client", "message", message)
			return
		}
		logger.Debug("instance metadata client", "message", message)
	})
}

// metadataSource fetches addresses from one instance metadata endpoint.
type metadataSource struct {
	client       *imds.Client
	endpoint     string
	timeout      time.Duration
	overrideFile string // named in errors as the way around metadata
}

// origin returns the prefix of errors about one metadata path.
func (m metadataSource) origin(path string) string {
	return fmt.Sprintf("instance metadata %s (%s)", path, m.endpoint)
}

// url returns the URL that the SDK requests for one metadata path.
func (m metadataSource) url(path string) string {
	return m.endpoint + "/latest/meta-data/" + path
}

// address fetches and validates one metadata path. The error wraps the SDK
// error, so isNotFound works on it.
func (m metadataSource) address(ctx context.Context, path string) (netip.Addr, error) {
	origin := m.origin(path)

	output, err := m.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return netip.Addr{}, m.describeError(ctx, origin, err)
	}
	defer output.Content.Close()

	raw, err := io.ReadAll(io.LimitReader(output.Content, maxRawBytes+1))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: reading the response failed: %w", origin, err)
	}

	addr, err := ParseAddress(origin, raw)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w; write the address to advertise to the override file %s to bypass instance metadata", err, m.overrideFile)
	}
	return addr, nil
}

// describeError prefixes err with origin and names the failure: a timeout, a
// 404 or another failure. The SDK reports a timeout as a canceled request or
// as a transport error.
func (m metadataSource) describeError(ctx context.Context, origin string, err error) error {
	var netErr net.Error
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout())

	if timedOut {
		return fmt.Errorf("%s: request timed out (IMDS timeout %s); check that the instance metadata service is reachable from this host, or write the address to advertise to the override file %s: %w", origin, m.timeout, m.overrideFile, err)
	}
	if isNotFound(err) {
		return fmt.Errorf("%s: not found (HTTP 404): %w", origin, err)
	}
	return fmt.Errorf("%s: request failed: %w", origin, err)
}

// isNotFound reports whether err carries an HTTP 404 response.
func isNotFound(err error) bool {
	var statusErr interface{ HTTPStatusCode() int }
	return errors.As(err, &statusErr) && statusErr.HTTPStatusCode() == http.StatusNotFound
}
