package advertise

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultOverrideFile is the override file path used when
// Config.OverrideFile is empty. CircleCI server's Nomad clients use the same
// path.
const DefaultOverrideFile = "/etc/circleci/public-ipv4"

// DefaultIMDSTimeout bounds one whole resolution against instance metadata:
// the token PUT, the public-ipv4 GET and the local-ipv4 GET, with the SDK's
// retries. When the IMDS hop limit drops the token response, the SDK makes
// three PUT attempts that each time out after 500ms, with 1s of backoff
// between them, before it falls back to an IMDSv1 GET. That takes about 3.5s
// (imds v1.20.9 and aws-sdk-go-v2 v1.48.0, and the same in
// TestResolve_LostTokenFallsBackToIMDSv1), which leaves 1.5s for the GETs.
// Later resolutions skip the token because the client remembers the
// fallback.
const DefaultIMDSTimeout = 5 * time.Second

const (
	// endpointEnvVar is the variable that imds.New reads when Options.Endpoint
	// is empty.
	endpointEnvVar = "AWS_EC2_METADATA_SERVICE_ENDPOINT"

	// sdkDefaultEndpoint is the endpoint that imds.New uses when neither
	// Options.Endpoint nor endpointEnvVar is set.
	sdkDefaultEndpoint = "http://169.254.169.254"
)

// Config is filled from the plugin block of the Nomad client config.
type Config struct {
	// OverrideFile is the path of a file that contains the address to
	// advertise. "" means DefaultOverrideFile.
	OverrideFile string

	// IMDSEndpoint is the base URL of the instance metadata service. "" means
	// the SDK default, which is AWS_EC2_METADATA_SERVICE_ENDPOINT when set and
	// http://169.254.169.254 otherwise.
	IMDSEndpoint string

	// IMDSTimeout is the maximum duration of one whole resolution against
	// instance metadata, token included. 0 means DefaultIMDSTimeout.
	IMDSTimeout time.Duration

	// LocalIPv4Fallback turns on the fallback to local-ipv4 when public-ipv4
	// returns 404, which means the instance has no public IPv4 address. The
	// documented default is on, but the zero Config has it off, so the plugin
	// config schema must default it to true.
	LocalIPv4Fallback bool

	// Logger receives the decisions and failures. nil means
	// hclog.NewNullLogger().
	Logger hclog.Logger

	// Now is the clock for ResolvedAt and cache ages. nil means time.Now.
	Now func() time.Time
}

// withDefaults validates cfg and returns a copy with every default filled in,
// IMDSEndpoint included.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.OverrideFile == "" {
		cfg.OverrideFile = DefaultOverrideFile
	}
	if cfg.IMDSTimeout < 0 {
		return Config{}, fmt.Errorf("IMDS timeout %s is negative; set a positive duration such as %s, or 0 for the default", cfg.IMDSTimeout, DefaultIMDSTimeout)
	}
	if cfg.IMDSTimeout == 0 {
		cfg.IMDSTimeout = DefaultIMDSTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	endpoint, err := effectiveEndpoint(cfg.IMDSEndpoint)
	if err != nil {
		return Config{}, err
	}
	cfg.IMDSEndpoint = endpoint

	return cfg, nil
}

// effectiveEndpoint returns the endpoint that imds.New would pick for the
// configured value, without its trailing slash, after checking that it is a
// plain http or https base URL. The SDK replaces the URL path with the metadata
// path, so a path, query or fragment would be silently dropped.
func effectiveEndpoint(configured string) (string, error) {
	endpoint, origin := configured, "IMDS endpoint"
	if endpoint == "" {
		endpoint, origin = os.Getenv(endpointEnvVar), endpointEnvVar
	}
	if endpoint == "" {
		return sdkDefaultEndpoint, nil
	}

	if err := validateEndpoint(endpoint); err != nil {
		return "", fmt.Errorf("%s %q is invalid: %w; set a base URL such as %s", origin, endpoint, err, sdkDefaultEndpoint)
	}
	return strings.TrimSuffix(endpoint, "/"), nil
}

func validateEndpoint(endpoint string) error {
	parsed, err := url.Parse(endpoint)
	if err != nil {
		return err
	}

	switch {
	case parsed.Scheme != "http" && parsed.Scheme != "https":
		return errors.New("the scheme must be http or https")
	case parsed.Host == "":
		return errors.New("the host is missing")
	case parsed.User != nil:
		return errors.New("user info is not supported")
	case parsed.Path != "" && parsed.Path != "/":
		return errors.New("a path is not supported")
	case parsed.RawQuery != "" || parsed.Fragment != "":
		return errors.New("a query or fragment is not supported")
	}
	return nil
}
