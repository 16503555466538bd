package advertise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"
)

// cloud is the metadata service of one cloud provider.
type cloud interface {
	// name returns the name in Config.Clouds.
	name() string

	// lookup tries the cloud's sources within one IMDSTimeout, records a
	// step for each and accepts the addresses it finds into run. It returns
	// the error of the IPv4 lookup, or nil when it found an IPv4 address.
	lookup(ctx context.Context, run *run) error

	// skip records a skipped step for each source of the cloud.
	skip(run *run, reason string)
}

func (m metadataSource) name() string {
	return CloudAWS
}

func (m metadataSource) skip(run *run, reason string) {
	run.skip(SourceIMDSPublic, FamilyIPv4, m.url(metadataPublicIPv4), reason)
	run.skip(SourceIMDSLocal, FamilyIPv4, m.url(metadataLocalIPv4), reason)
	run.skip(SourceIMDSIPv6, FamilyIPv6, m.url(metadataMAC), reason)
}

const (
	// gcePath is the external IPv4 address of the first access config of
	// the first network interface.
	gcePath = "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip"

	// azurePath is the public IPv4 address of the first IP configuration of
	// the first network interface, as plain text.
	azurePath = "/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text"

	// GCE and Azure lookups copy the attempts and the backoff of the AWS
	// SDK's IMDS client, so that every cloud retries alike.
	headerMetadataMaxAttempts = 3
	headerMetadataRetryDelay  = time.Second
)

// headerMetadataSource fetches one public IPv4 address from a metadata
// service that needs only a request header: the GCE metadata server and the
// Azure Instance Metadata Service.
type headerMetadataSource struct {
	cloudName   string
	source      Source
	url         string
	header      string // the request header that the service requires
	headerValue string

	// flavor, when not "", is the Metadata-Flavor response header that the
	// service must send. The GCE metadata server sends "Google", which no
	// other server on that name would.
	flavor string

	client  httpDoer
	failure failureContext
}

func newGCESource(cfg Config, client httpDoer) *headerMetadataSource {
	return &headerMetadataSource{
		cloudName:   CloudGCE,
		source:      SourceGCE,
		url:         cfg.GCEEndpoint + gcePath,
		header:      "Metadata-Flavor",
		headerValue: "Google",
		flavor:      "Google",
		client:      client,
		failure: failureContext{
			origin:       fmt.Sprintf("GCE metadata external-ip (%s)", cfg.GCEEndpoint),
			service:      "the GCE metadata server",
			enableHint:   "check that the instance may read its metadata",
			timeout:      cfg.IMDSTimeout,
			overrideFile: cfg.OverrideFile,
		},
	}
}

func newAzureSource(cfg Config, client httpDoer) *headerMetadataSource {
	return &headerMetadataSource{
		cloudName:   CloudAzure,
		source:      SourceAzure,
		url:         cfg.AzureEndpoint + azurePath,
		header:      "Metadata",
		headerValue: "true",
		client:      client,
		failure: failureContext{
			origin:       fmt.Sprintf("Azure instance metadata publicIpAddress (%s)", cfg.AzureEndpoint),
			service:      "the Azure Instance Metadata Service",
			enableHint:   "check that no proxy or firewall rule on this host rewrites requests to it",
			timeout:      cfg.IMDSTimeout,
			overrideFile: cfg.OverrideFile,
		},
	}
}

func (s *headerMetadataSource) name() string {
	return s.cloudName
}

func (s *headerMetadataSource) skip(run *run, reason string) {
	run.skip(s.source, FamilyIPv4, s.url, reason)
}

func (s *headerMetadataSource) lookup(ctx context.Context, run *run) error {
	ctx, cancel := context.WithTimeout(ctx, s.failure.timeout)
	defer cancel()

	start := time.Now()
	addr, raw, err := s.address(ctx)
	run.record(s.source, FamilyIPv4, s.url, raw, start, err, reasonFor(s.source))
	if err != nil {
		return err
	}

	run.accept(addr, s.source, s.url)
	run.warnIfNotPublic(addr, s.source, s.url, s.failure.overrideFile)
	return nil
}

// address fetches and validates the address. raw is the body, or nil when
// none was read. An empty body means that the instance has no public IPv4
// address, like a 404.
//
// NOTE: which of 404 and an empty 200 GCE and Azure send for an instance
// without a public address is not checked against either cloud here, so
// both are treated as not found.
func (s *headerMetadataSource) address(ctx context.Context) (netip.Addr, []byte, error) {
	raw, err := s.fetch(ctx)
	if err != nil {
		return netip.Addr{}, raw, err
	}

	origin := s.failure.origin
	if len(trimValue(raw)) == 0 {
		return netip.Addr{}, raw, fmt.Errorf("%s: %w, so the instance has no public IPv4 address; %s", origin, errEmptyBody, s.failure.bypass())
	}

	addr, err := ParseAddress(origin, raw)
	if err == nil && !addr.Is4() {
		err = invalidAddress(origin, raw, "is an IPv6 address, but this metadata path must contain an IPv4 address")
	}
	if err != nil {
		return netip.Addr{}, raw, fmt.Errorf("%w; %s to bypass instance metadata", err, s.failure.bypass())
	}
	return addr, raw, nil
}

// fetch requests the address with up to headerMetadataMaxAttempts
// attempts. It retries 429, 5xx and transport errors after
// headerMetadataRetryDelay, unless the context ends first.
func (s *headerMetadataSource) fetch(ctx context.Context) ([]byte, error) {
	ctx, attempts := withAttemptLog(ctx)

	for attempt := 1; ; attempt++ {
		raw, err := s.fetchOnce(ctx)

		var readErr *bodyReadError
		var invalid *invalidValueError
		switch {
		case err == nil:
			return raw, nil
		case errors.As(err, &readErr):
			return nil, s.failure.describeRead(ctx, readErr.read, readErr.err)
		case errors.As(err, &invalid):
			return raw, err
		case attempt == headerMetadataMaxAttempts || !retryable(ctx, err):
			return nil, s.failure.describe(ctx, attempts, err)
		}

		timer := time.NewTimer(headerMetadataRetryDelay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, s.failure.describe(ctx, attempts, err)
		}
	}
}

func (s *headerMetadataSource) fetchOnce(ctx context.Context) ([]byte, error) {
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	request.Header.Set(s.header, s.headerValue)

	response, err := s.client.Do(request)
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()

	raw, err := io.ReadAll(response.Body)
	if response.StatusCode != http.StatusOK {
		return nil, &httpStatusError{code: response.StatusCode, body: raw}
	}
	if err != nil {
		return nil, &bodyReadError{read: len(raw), err: err}
	}
	if s.flavor != "" && response.Header.Get("Metadata-Flavor") != s.flavor {
		return raw, &invalidValueError{message: fmt.Sprintf("%s: the response lacks the header Metadata-Flavor: %s, so it did not come from %s; check the endpoint, or %s",
			s.failure.origin, s.flavor, s.failure.service, s.failure.bypass())}
	}
	return raw, nil
}

// retryable reports whether a failed attempt may succeed when repeated.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch statusCode(err) {
	case 0:
		return true
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// httpStatusError is a response with a status other than 200.
type httpStatusError struct {
	code int
	body []byte // at most maxRawBytes+1 bytes
}

func (e *httpStatusError) Error() string {
	message := fmt.Sprintf("HTTP %d %s", e.code, http.StatusText(e.code))
	if len(e.body) > 0 {
		message += ", body " + quotePrefix(e.body)
	}
	return message
}

func (e *httpStatusError) HTTPStatusCode() int {
	return e.code
}

// bodyReadError is a response body that failed while it was read.
type bodyReadError struct {
	read int
	err  error
}

func (e *bodyReadError) Error() string {
	return fmt.Sprintf("reading the response failed after %d bytes: %v", e.read, e.err)
}

func (e *bodyReadError) Unwrap() error {
	return e.err
}
