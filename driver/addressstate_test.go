package driver

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
)

// A plugin that restarts while the metadata service is down serves the
// address that the plugin before it resolved in the same boot, marked
// stale.
func TestFingerprint_RestartDuringOutageKeepsSavedAddress(t *testing.T) {
	dataDir := t.TempDir()
	srv := newMetadataServer(t, "198.51.100.7")
	config := func() map[string]interface{} {
		return map[string]interface{}{
			"data_dir": dataDir,
			"advertise": map[string]interface{}{
				"override_file":    filepath.Join(dataDir, "absent"),
				"imds_endpoint":    srv.URL,
				"imds_timeout":     "1s",
				"refresh_interval": "1s",
			},
		}
	}

	first := newTestDriver(t, config())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := first.Fingerprint(ctx)
	require.NoError(t, err)
	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)
	require.FileExists(t, filepath.Join(dataDir, lastAddressFile))
	first.impl.Shutdown()

	// the metadata service dies, and the next plugin process starts
	srv.Close()
	second := newTestDriver(t, config())
	ch, err = second.Fingerprint(ctx)
	require.NoError(t, err)
	fp = nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)
	require.True(t, *fp.Attributes["driver.sshrerun.advertise.stale"].Bool)
	require.Equal(t, "198.51.100.7", *fp.Attributes["driver.sshrerun.advertise.ipv4"].String)
	require.Contains(t, fp.HealthDescription, "because the refresh failed")

	// a task started now gets the saved address
	key := newUserKey(t)
	task := newSleepingSSHTask(t, freeSSHPort(t), key)
	handle, _ := second.startTask(t, task)
	require.Equal(t, "198.51.100.7", taskState(t, handle).SSH.Host)
}

func TestAddressStore_OtherBootIgnored(t *testing.T) {
	dir := t.TempDir()
	store := addressStore{path: filepath.Join(dir, lastAddressFile), bootID: "boot-1"}
	result := advertise.Result{IPv4: netip.MustParseAddr("198.51.100.7"), IPv4Source: advertise.SourceIMDSPublic, ResolvedAt: time.Now()}
	require.NoError(t, store.save(result))

	loaded, err := store.load()
	require.NoError(t, err)
	require.NotNil(t, loaded)
	require.Equal(t, result.IPv4, loaded.IPv4)
	require.Equal(t, result.IPv4Source, loaded.IPv4Source)

	// after a reboot the instance may have a new public address
	rebooted := addressStore{path: store.path, bootID: "boot-2"}
	loaded, err = rebooted.load()
	require.NoError(t, err)
	require.Nil(t, loaded)
}

func TestAddressStore_CorruptFileIgnored(t *testing.T) {
	store := addressStore{path: filepath.Join(t.TempDir(), lastAddressFile), bootID: "boot-1"}
	require.NoError(t, os.WriteFile(store.path, []byte("{not json"), 0o644))

	loaded, err := store.load()
	require.Nil(t, loaded)
	require.ErrorContains(t, err, "is not valid JSON, so it is ignored")

	// the next resolution replaces it
	require.NoError(t, store.save(advertise.Result{IPv4: netip.MustParseAddr("198.51.100.7")}))
	loaded, err = store.load()
	require.NoError(t, err)
	require.Equal(t, "198.51.100.7", loaded.IPv4.String())
}
