package advertise

import (
	"reflect"
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
			wantErr: `IMDS endpoint "ftp://127.0.0.1" is invalid: the scheme must be http or https; ` + endpointFix,
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
			name:    "unknown cloud",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", Clouds: []string{"aws", "gcp"}},
			wantErr: `clouds: "gcp" is not a supported cloud; use "aws", "gce" or "azure"`,
		},
		{
			name:    "cloud in capitals",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", Clouds: []string{"AWS"}},
			wantErr: `clouds: "AWS" is not a supported cloud; use "aws", "gce" or "azure"`,
		},
		{
			name:    "empty cloud name",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", Clouds: []string{""}},
			wantErr: `clouds: "" is not a supported cloud`,
		},
		{
			name:    "cloud listed twice",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", Clouds: []string{"gce", "aws", "gce"}},
			wantErr: `clouds: "gce" is listed twice; list each cloud once, in the order to try them`,
		},
		{
			name:    "GCE endpoint with a path",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", GCEEndpoint: "http://127.0.0.1:1339/computeMetadata/v1"},
			wantErr: `GCE endpoint "http://127.0.0.1:1339/computeMetadata/v1" is invalid: a path is not supported; ` + endpointFix,
		},
		{
			name:    "GCE endpoint without scheme",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", GCEEndpoint: "gce-metadata.invalid"},
			wantErr: `GCE endpoint "gce-metadata.invalid" is invalid: the scheme must be http or https`,
		},
		{
			name:    "Azure endpoint with a query",
			cfg:     Config{IMDSEndpoint: "http://127.0.0.1:1338", AzureEndpoint: "http://127.0.0.1:1340?api-version=2021-02-01"},
			wantErr: `Azure endpoint "http://127.0.0.1:1340?api-version=2021-02-01" is invalid: a query or fragment is not supported; ` + endpointFix,
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
	if cfg.IMDSEndpoint != DefaultIMDSEndpoint {
		t.Errorf("IMDSEndpoint = %q, want the SDK default %s", cfg.IMDSEndpoint, DefaultIMDSEndpoint)
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
	if !reflect.DeepEqual(cfg.Clouds, []string{"aws"}) {
		t.Errorf("Clouds = %q, want [aws]", cfg.Clouds)
	}
	if cfg.GCEEndpoint != DefaultGCEEndpoint {
		t.Errorf("GCEEndpoint = %q, want %s", cfg.GCEEndpoint, DefaultGCEEndpoint)
	}
	if cfg.AzureEndpoint != DefaultAzureEndpoint {
		t.Errorf("AzureEndpoint = %q, want %s", cfg.AzureEndpoint, DefaultAzureEndpoint)
	}
}

func TestConfigDefaults_CloudsAndEndpoints(t *testing.T) {
	clouds := []string{"azure", "gce", "aws"}

	cfg, err := Config{
		IMDSEndpoint:  "http://127.0.0.1:1338",
		Clouds:        clouds,
		GCEEndpoint:   "http://127.0.0.1:1339/",
		AzureEndpoint: "https://127.0.0.1:1340",
	}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults returned error: %v", err)
	}
	clouds[0] = "changed"

	if !reflect.DeepEqual(cfg.Clouds, []string{"azure", "gce", "aws"}) {
		t.Errorf("Clouds = %q, want a copy of [azure gce aws] in order", cfg.Clouds)
	}
	if cfg.GCEEndpoint != "http://127.0.0.1:1339" {
		t.Errorf("GCEEndpoint = %q, want http://127.0.0.1:1339 without the trailing slash", cfg.GCEEndpoint)
	}
	if cfg.AzureEndpoint != "https://127.0.0.1:1340" {
		t.Errorf("AzureEndpoint = %q, want https://127.0.0.1:1340", cfg.AzureEndpoint)
	}
}

// The clouds of a Resolver follow Config.Clouds. NewResolver does no I/O, so
// the default GCE and Azure endpoints are built into clients here but never
// dialled.
func TestNewResolver_CloudsInOrder(t *testing.T) {
	resolver, err := NewResolver(Config{
		IMDSEndpoint: "http://127.0.0.1:9",
		Clouds:       []string{"gce", "azure", "aws"},
	})
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}

	var names []string
	for _, cloud := range resolver.clouds {
		names = append(names, cloud.name())
	}
	if !reflect.DeepEqual(names, []string{"gce", "azure", "aws"}) {
		t.Errorf("clouds = %q, want [gce azure aws]", names)
	}
	gce := resolver.clouds[0].(*headerMetadataSource)
	if want := DefaultGCEEndpoint + "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip"; gce.url != want {
		t.Errorf("GCE URL = %q, want %q", gce.url, want)
	}
	azure := resolver.clouds[1].(*headerMetadataSource)
	if want := DefaultAzureEndpoint + "/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text"; azure.url != want {
		t.Errorf("Azure URL = %q, want %q", azure.url, want)
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
