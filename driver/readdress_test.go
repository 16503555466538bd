package driver

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"
)

func TestAddressChange_RunningTaskGetsNewCommand(t *testing.T) {
	override := filepath.Join(t.TempDir(), "public-ipv4")
	require.NoError(t, os.WriteFile(override, []byte("127.0.0.1\n"), 0o644))
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{"override_file": override, "imds_endpoint": "http://127.0.0.1:9"},
	})
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newSleepingSSHTask(t, port, key)
	d.startTask(t, task)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := d.TaskEvents(ctx)
	require.NoError(t, err)
	fingerprints, err := d.Fingerprint(ctx)
	require.NoError(t, err)
	go func() {
		for range fingerprints {
		}
	}()

	// a boot script rewrites the override file
	require.NoError(t, os.WriteFile(override, []byte("203.0.113.20\n"), 0o644))
	want := "ssh -p " + strconv.Itoa(port) + " root@203.0.113.20"
	messages := eventMessages(ctx, events, task.ID, func(m string) bool { return strings.HasPrefix(m, want) })
	require.NotEmpty(t, messages)
	require.True(t, strings.HasPrefix(messages[len(messages)-1], want), "events: %q", messages)
}

func TestFingerprint_IPv6Family(t *testing.T) {
	override := filepath.Join(t.TempDir(), "public-ip")
	require.NoError(t, os.WriteFile(override, []byte("2001:db8::10\n"), 0o644))
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{"override_file": override, "imds_endpoint": "http://127.0.0.1:9", "family": "ipv6"},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)
	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateHealthy, fp.Health)
	require.Equal(t, "2001:db8::10", *fp.Attributes["driver.sshrerun.advertise.ipv6"].String)
	require.Nil(t, fp.Attributes["driver.sshrerun.advertise.ipv4"])
	require.Equal(t, "override-file", *fp.Attributes["driver.sshrerun.advertise.source"].String)
}

func TestFingerprint_FamilyMissingIsUnhealthy(t *testing.T) {
	override := filepath.Join(t.TempDir(), "public-ip")
	require.NoError(t, os.WriteFile(override, []byte("203.0.113.10\n"), 0o644))
	d := newTestDriver(t, map[string]interface{}{
		"advertise": map[string]interface{}{"override_file": override, "imds_endpoint": "http://127.0.0.1:9", "family": "ipv6"},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	require.NoError(t, err)
	fp := nextFingerprint(t, ch, 30*time.Second, anyFingerprint)
	require.Equal(t, drivers.HealthStateUnhealthy, fp.Health)
	require.Contains(t, fp.HealthDescription, "no address to advertise for SSH")
	require.Equal(t, "203.0.113.10", *fp.Attributes["driver.sshrerun.advertise.ipv4"].String)
}
