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

// DefaultIMDSTimeout bounds the lookups at one cloud's metadata service. For
// AWS that is the token PUT, the public-ipv4 and local-ipv4 GETs and the two
// GETs of the IPv6 lookup, with the SDK's retries. When the IMDS hop limit
// drops the token response, the SDK makes three PUT attempts that each time
// out after 500ms, with 1s of backoff between them, before it falls back to
// IMDSv1 GETs. That takes about 3.5s (imds v1.20.9 and aws-sdk-go-v2
// v1.48.0, and the same in TestResolve_LostTokenFallsBackToIMDSv1), which
// leaves 1.5s for the GETs. Later resolutions skip the token because the
// client remembers the fallback.
const DefaultIMDSTimeout = 5 * time.Second

// Clouds whose metadata services Config.Clouds can name.
const (
	CloudAWS   = "aws"
	CloudGCE   = "gce"
	CloudAzure = "azure"
)

const (
	// DefaultGCEEndpoint is the GCE metadata server used when
	// Config.GCEEndpoint is empty.
	DefaultGCEEndpoint = "http://metadata.google.internal"

	// DefaultAzureEndpoint is the Azure Instance Metadata Service used when
	// Config.AzureEndpoint is empty.
	DefaultAzureEndpoint = "http://169.254.169.254"
)

// endpointFix is the fix that an invalid endpoint's error gives.
const endpointFix = "set a base URL with only a scheme, a host and a port, such as http://127.0.0.1:1338, or leave the option unset for the default"

const (
	// endpointEnvVar is the variable that imds.New reads when Options.Endpoint
	// is empty.
	endpointEnvVar = "AWS_EC2_METADATA_SERVICE_ENDPOINT"

	// DefaultIMDSEndpoint is the endpoint that imds.New uses when neither
	// Options.Endpoint nor endpointEnvVar is set.
	DefaultIMDSEndpoint = "http://169.254.169.254"
)

// Config is filled from the plugin block of the Nomad client config.
type Config struct {
	// OverrideFile is the path of a file that contains the address to
	// advertise. "" means DefaultOverrideFile.
	OverrideFile string

	// IMDSEndpoint is the base URL of the instance metadata service. "" means
	// the SDK default, which is AWS_EC2_METADATA_SERVICE_ENDPOINT when set and
	// DefaultIMDSEndpoint otherwise.
	IMDSEndpoint string

	// IMDSTimeout is the maximum duration of the lookups at one cloud's
	// metadata service, AWS's token included. Each cloud in Clouds that is
	// tried gets its own IMDSTimeout, so a resolution that tries every cloud
	// can take len(Clouds) times as long. 0 means DefaultIMDSTimeout.
	IMDSTimeout time.Duration

	// Clouds lists the metadata services to try after the override file, in
	// order: CloudAWS, CloudGCE and CloudAzure, each at most once. The first
	// cloud that returns an address wins and the rest are skipped. An empty
	// list means []string{CloudAWS}. Only AWS is asked for an IPv6 address.
	Clouds []string

	// GCEEndpoint is the base URL of the GCE metadata server. "" means
	// DefaultGCEEndpoint.
	GCEEndpoint string

	// AzureEndpoint is the base URL of the Azure Instance Metadata Service.
	// "" means DefaultAzureEndpoint.
	AzureEndpoint string

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
// IMDSEndpoint included. Clouds in the copy is a new slice.
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

	clouds, err := validateClouds(cfg.Clouds)
	if err != nil {
		return Config{}, err
	}
	cfg.Clouds = clouds

	cfg.GCEEndpoint, err = configuredEndpoint("GCE endpoint", cfg.GCEEndpoint, DefaultGCEEndpoint)
	if err != nil {
		return Config{}, err
	}
	cfg.AzureEndpoint, err = configuredEndpoint("Azure endpoint", cfg.AzureEndpoint, DefaultAzureEndpoint)
	if err != nil {
		return Config{}, err
	}

	return cfg, nil
}

// validateClouds checks every name and returns a copy of clouds, or
// []string{CloudAWS} for an empty list.
func validateClouds(clouds []string) ([]string, error) {
	if len(clouds) == 0 {
		return []string{CloudAWS}, nil
	}

	seen := make(map[string]bool, len(clouds))
	for _, cloud := range clouds {
		switch cloud {
		case CloudAWS, CloudGCE, CloudAzure:
		default:
			return nil, fmt.Errorf("clouds: %q is not a supported cloud; use %q, %q or %q", cloud, CloudAWS, CloudGCE, CloudAzure)
		}
		if seen[cloud] {
			return nil, fmt.Errorf("clouds: %q is listed twice; list each cloud once, in the order to try them", cloud)
		}
		seen[cloud] = true
	}
	return append([]string(nil), clouds...), nil
}

// configuredEndpoint returns the configured base URL without its trailing
// slash, or fallback when none is configured.
func configuredEndpoint(name, configured, fallback string) (string, error) {
	if configured == "" {
		return fallback, nil
	}
	if err := validateEndpoint(configured); err != nil {
		return "", fmt.Errorf("%s %q is invalid: %w; %s", name, configured, err, endpointFix)
	}
	return strings.TrimSuffix(configured, "/"), nil
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
		return DefaultIMDSEndpoint, nil
	}

	if err := validateEndpoint(endpoint); err != nil {
		return "", fmt.Errorf("%s %q is invalid: %w; %s", origin, endpoint, err, endpointFix)
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
