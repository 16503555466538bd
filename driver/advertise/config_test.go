package advertise

import (
	"strings"
	"testing"
	"time"
)

func TestNewResolver_RejectsInvalidConfig(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{
			name:    "negative timeout",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", IMDSTimeout: -time.Second},
			wantErr: "IMDS timeout -1s is negative; set a positive duration such as 5s, or 0 for the default",
		},
		{
			name:    "unsupported scheme",
			cfg:     Config{IMDSEndpoint: "ftp://127.0.0.1"},
			wantErr: `IMDS endpoint "ftp://127.0.0.1" is invalid: the scheme must be http or https; set a base URL such as http://169.254.169.254`,
		},
		{
			name:    "missing scheme",
			cfg:     Config{IMDSEndpoint: "127.0.0.1:1338"},
			wantErr: `IMDS endpoint "127.0.0.1:1338" is invalid`,
		},
		{
			name:    "missing host",
			cfg:     Config{IMDSEndpoint: "http://"},
			wantErr: `IMDS endpoint "http://" is invalid: the host is missing`,
		},
		{
			name:    "path",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1/latest/meta-data"},
			wantErr: `IMDS endpoint "http://127.0.0.1/latest/meta-data" is invalid: a path is not supported`,
		},
		{
			name:    "query",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1?x=1"},
			wantErr: `IMDS endpoint "http://127.0.0.1?x=1" is invalid: a query or fragment is not supported`,
		},
		{
			name:    "user info",
			cfg:     Config{IMDSEndpoint: "http://user@127.0.0.1"},
			wantErr: `IMDS endpoint "http://user@127.0.0.1" is invalid: user info is not supported`,
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resolver, err := NewResolver(tc.cfg)
			if err == nil {
				t.Fatalf("NewResolver returned %v and no error", resolver)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q\nwant it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewResolver_RejectsInvalidEndpointVariable(t *testing.T) {
	t.Setenv(endpointEnvVar, "127.0.0.1:1338")

	_, err := NewResolver(Config{})
	if err == nil {
		t.Fatal("NewResolver returned no error")
	}

	want := `AWS_EC2_METADATA_SERVICE_ENDPOINT "127.0.0.1:1338" is invalid`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q\nwant it to contain %q", err, want)
	}
}

// The defaults are checked as values. No test builds a client for the
// default endpoint, so none can reach a real metadata service.
func TestConfigDefaults(t *testing.T) {
	t.Setenv(endpointEnvVar, "")

	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults returned error: %v", err)
	}

	if cfg.OverrideFile != "/etc/circleci/public-ipv4" {
		t.Errorf("OverrideFile = %q, want /etc/circleci/public-ipv4", cfg.OverrideFile)
	}
	if cfg.IMDSEndpoint != "http://169.254.169.254" {
		t.Errorf("IMDSEndpoint = %q, want the SDK default http://169.254.169.254", cfg.IMDSEndpoint)
	}
	if cfg.IMDSTimeout != 5*time.Second {
		t.Errorf("IMDSTimeout = %s, want 5s", cfg.IMDSTimeout)
	}
	if cfg.Logger == nil {
		t.Error("Logger is nil, want a null logger")
	}
	if cfg.Now == nil {
		t.Error("Now is nil, want time.Now")
	}
}

func TestConfigDefaults_EndpointFromVariable(t *testing.T) {
	t.Setenv(endpointEnvVar, "http://127.0.0.1:1338/")

	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults returned error: %v", err)
	}

	if cfg.IMDSEndpoint != "http://127.0.0.1:1338" {
		t.Errorf("IMDSEndpoint = %q, want http://127.0.0.1:1338 from %s", cfg.IMDSEndpoint, endpointEnvVar)
	}
}

func TestConfigDefaults_ConfiguredEndpointBeatsVariable(t *testing.T) {
	t.Setenv(endpointEnvVar, "http://127.0.0.1:1338")

	cfg, err := Config{IMDSEndpoint: "http://127.0.0.1:1339"}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults returned error: %v", err)
	}

	if cfg.IMDSEndpoint != "http://127.0.0.1:1339" {
		t.Errorf("IMDSEndpoint = %q, want the configured http://127.0.0.1:1339", cfg.IMDSEndpoint)
	}
}
