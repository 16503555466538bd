package advertise

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/logging"
	"github.com/hashicorp/go-hclog"
)

const (
	metadataPublicIPv4 = "public-ipv4"
	metadataLocalIPv4  = "local-ipv4"
)

// newIMDSClient builds the one long-lived client of a Resolver, so that the
// SDK caches the IMDSv2 token and its IMDSv1 fallback state across
// resolutions.
//
// The SDK's retry quota is turned off because it is shared by every call of
// the client: after a long outage an empty quota would stop the retry that
// fetches a fresh token after a 401. Each request still gets the SDK's
// standard three attempts with 1s of backoff between them, for 429, 5xx and
// transport errors, bounded by Config.IMDSTimeout.
func newIMDSClient(endpoint string, httpClient httpDoer, logger hclog.Logger) *imds.Client {
	return imds.New(imds.Options{
		Endpoint:   endpoint,
		HTTPClient: httpClient,
		Retryer: retry.NewStandard(func(options *retry.StandardOptions) {
			options.RateLimiter = ratelimit.None
		}),
		Logger: sdkLogger(logger),
	})
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

// metadataSource fetches addresses from one AWS instance metadata endpoint.
type metadataSource struct {
	client            *imds.Client
	endpoint          string
	timeout           time.Duration
	overrideFile      string // named in errors as the way around metadata
	localIPv4Fallback bool
}

// failure returns what the errors about one metadata path name.
func (m metadataSource) failure(path string) failureContext {
	return failureContext{
		origin:       fmt.Sprintf("instance metadata %s (%s)", path, m.endpoint),
		service:      "the instance metadata service",
		enableHint:   "turn it on with aws ec2 modify-instance-metadata-options --instance-id ID --http-endpoint enabled",
		timeout:      m.timeout,
		overrideFile: m.overrideFile,
	}
}

// url returns the URL that the SDK requests for one metadata path.
func (m metadataSource) url(path string) string {
	return m.endpoint + "/latest/meta-data/" + path
}

// fetch returns the body of one metadata path, at most maxRawBytes+1 bytes
// of it. The error wraps the SDK error, so isNotFound works on it.
func (m metadataSource) fetch(ctx context.Context, path string) ([]byte, error) {
	ctx, attempts := withAttemptLog(ctx)

	output, err := m.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return nil, m.failure(path).describe(ctx, attempts, err)
	}
	defer output.Content.Close()

	raw, err := io.ReadAll(io.LimitReader(output.Content, maxRawBytes+1))
	if err != nil {
		return nil, m.failure(path).describeRead(ctx, len(raw), err)
	}
	return raw, nil
}

// address fetches and validates one metadata path. raw is the body, or nil
// when none was read.
func (m metadataSource) address(ctx context.Context, path string) (addr netip.Addr, raw []byte, err error) {
	raw, err = m.fetch(ctx, path)
	if err != nil {
		return netip.Addr{}, nil, err
	}

	addr, err = ParseAddress(m.failure(path).origin, raw)
	if err != nil {
		return netip.Addr{}, raw, fmt.Errorf("%w; write the address to advertise to the override file %s to bypass instance metadata", err, m.overrideFile)
	}
	return addr, raw, nil
}
