package driver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
)

// newMetadataServer serves IMDSv2 on 127.0.0.1 with a fixed public-ipv4,
// or returns 500 to every request when publicIPv4 is empty.
func newMetadataServer(t *testing.T, publicIPv4 string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case publicIPv4 == "":
			http.Error(w, "internal error", http.StatusInternalServerError)
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			_, _ = w.Write([]byte("test-token"))
		case r.Header.Get("X-Aws-Ec2-Metadata-Token") != "test-token":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/latest/meta-data/public-ipv4":
			_, _ = w.Write([]byte(publicIPv4))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// nextFingerprint returns the next fingerprint for which accept is true.
func nextFingerprint(t *testing.T, ch <-chan *drivers.Fingerprint, timeout time.Duration, accept func(*drivers.Fingerprint) bool) *drivers.Fingerprint {
	t.Helper()
	deadline := time.After(timeout)
	var last *drivers.Fingerprint
	for {
		select {
		case fp := <-ch:
			if accept(fp) {
				return fp
			}
			last = fp
		case <-deadline:
			t.Fatalf("no matching fingerprint within %s; last: %+v", timeout, last)
			return nil
		}
	}
}

func anyFingerprint(*drivers.Fingerprint) bool { return true }

func TestFingerprint_MetadataAddress(t *testing.T) {
	srv := newMetadataServer(t, "198.51.100.7")
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{
			"override_file": filepath.Join(t.TempDir(), "absent"),
			"imds_endpoint": srv.URL,
		},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)

	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)
	require.Equal(t, "198.51.100.7", *fp.Attributes["driver.sshrerun.advertise.ipv4"].String)
	require.Equal(t, "imds-public", *fp.Attributes["driver.sshrerun.advertise.source"].String)
	require.True(t, *fp.Attributes["driver.sshrerun"].Bool)
}

func TestFingerprint_UnhealthyWithoutAddress(t *testing.T) {
	srv := newMetadataServer(t, "")
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{
			"override_file": filepath.Join(t.TempDir(), "absent"),
			"imds_endpoint": srv.URL,
			"imds_timeout":  "2s",
		},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)

	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateUnhealthy, fp.Health)
	require.Contains(t, fp.HealthDescription, "no address to advertise for SSH")
	require.Contains(t, fp.HealthDescription, srv.URL)
	require.Nil(t, fp.Attributes["driver.sshrerun.advertise.ipv4"])
}

func TestFingerprint_OverrideWrittenLate(t *testing.T) {
	srv := newMetadataServer(t, "198.51.100.7")
	override := filepath.Join(t.TempDir(), "public-ipv4")
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{
			"override_file": override,
			"imds_endpoint": srv.URL,
		},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)

	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, "imds-public", *fp.Attributes["driver.sshrerun.advertise.source"].String)

	// a boot script writes the override file after the agent started
	require.NoError(t, os.WriteFile(override, []byte("203.0.113.10\n"), 0o644))
	fp = nextFingerprint(t, ch, 30*time.Second, func(fp *drivers.Fingerprint) bool {
		attr := fp.Attributes["driver.sshrerun.advertise.source"]
		return attr != nil && *attr.String == "override-file"
	})
	require.Equal(t, "203.0.113.10", *fp.Attributes["driver.sshrerun.advertise.ipv4"].String)
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)
}

func TestFingerprint_MetadataOutageKeepsLastAddress(t *testing.T) {
	srv := newMetadataServer(t, "198.51.100.7")
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{
			"override_file":    filepath.Join(t.TempDir(), "absent"),
			"imds_endpoint":    srv.URL,
			"imds_timeout":     "1s",
			"refresh_interval": "1s",
		},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)
	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)
	require.False(t, *fp.Attributes["driver.sshrerun.advertise.stale"].Bool)

	// the metadata server dies: the last address keeps serving, marked stale
	srv.Close()
	fp = nextFingerprint(t, ch, 30*time.Second, func(fp *drivers.Fingerprint) bool {
		stale := fp.Attributes["driver.sshrerun.advertise.stale"]
		return stale != nil && *stale.Bool
	})
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)
	require.Contains(t, fp.HealthDescription, "the advertised address 198.51.100.7 is from")
	require.Contains(t, fp.HealthDescription, "because the refresh failed")
	require.Equal(t, "198.51.100.7", *fp.Attributes["driver.sshrerun.advertise.ipv4"].String)

	// a task started during the outage gets the last address
	key := newUserKey(t)
	task := newSleepingSSHTask(t, freeSSHPort(t), key)
	handle, _ := d.startTask(t, task)
	state := taskState(t, handle)
	require.Equal(t, "198.51.100.7", state.SSH.Host)
	require.Equal(t, "imds-public", state.SSH.AdvertiseSource)
}

func TestFingerprint_InvalidOverrideNeverServesStale(t *testing.T) {
	srv := newMetadataServer(t, "198.51.100.7")
	override := filepath.Join(t.TempDir(), "public-ipv4")
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{"override_file": override, "imds_endpoint": srv.URL},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)
	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)

	// the operator writes an invalid override: that is an error to fix,
	// not a reason to keep the metadata address
	require.NoError(t, os.WriteFile(override, []byte("not an address\n"), 0o644))
	fp = nextFingerprint(t, ch, 30*time.Second, func(fp *drivers.Fingerprint) bool {
		return fp.Health == drivers.HealthStateUnhealthy
	})
	require.Contains(t, fp.HealthDescription, override)
}
