package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// benchRounds is how many interleaved starts of each kind the start
// benchmark times.
const benchRounds = 10

// waitForBanner polls 127.0.0.1:port until the SSH server sends its
// banner, and returns when it did.
func waitForBanner(port int, deadline time.Time) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if err == nil && strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("no SSH banner on %s", addr)
}

func median(durations []time.Duration) time.Duration {
	sorted := append([]time.Duration(nil), durations...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return sorted[len(sorted)/2]
}

// newBenchDriver returns a configured driver without Nomad's harness,
// whose test type a benchmark cannot provide. Its address comes from an
// override file that holds 127.0.0.1.
func newBenchDriver(b *testing.B) *Driver {
	b.Helper()
	override := filepath.Join(b.TempDir(), "public-ipv4")
	require.NoError(b, os.WriteFile(override, []byte("127.0.0.1\n"), 0o644))

	d := NewPlugin(hclog.NewNullLogger())
	d.initBinary = testInitBinary
	b.Cleanup(d.Shutdown)
	var encoded []byte
	require.NoError(b, base.MsgPackEncode(&encoded, &PluginConfig{
		DataDir:   b.TempDir(),
		Advertise: &AdvertiseConfig{OverrideFile: override, IMDSEndpoint: "http://127.0.0.1:9", LocalIPv4Fallback: true},
	}))
	require.NoError(b, d.SetConfig(&base.Config{PluginConfig: encoded}))
	return d
}

// startRaw creates and starts the busybox image through the Docker API,
// with port published on 127.0.0.1 to the init's SSH server, and returns
// the container's ID.
func startRaw(ctx context.Context, b *testing.B, d *Driver, configPath string, port int) string {
	_, docker, _, err := d.state()
	require.NoError(b, err)
	containerPort := nat.Port("2222/tcp")
	created, err := docker.ContainerCreate(ctx, &container.Config{
		Image:        testImage,
		Entrypoint:   []string{"/.sshrerun/nomad-driver-sshrerun", "container-init", "-config", "/.sshrerun/config.json"},
		ExposedPorts: nat.PortSet{containerPort: struct{}{}},
		Labels:       map[string]string{"nomad-driver-sshrerun.benchmark": "raw"},
	}, &container.HostConfig{
		Binds: []string{testInitBinary + ":/.sshrerun/nomad-driver-sshrerun:ro", configPath + ":/.sshrerun/config.json:ro"},
		PortBindings: nat.PortMap{
			containerPort: []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}},
		},
	}, nil, nil, "")
	require.NoError(b, err)
	require.NoError(b, docker.ContainerStart(ctx, created.ID, container.StartOptions{}))
	return created.ID
}

// BenchmarkStartToSSHBanner times, from the start call to the SSH banner
// on the host port, raw Docker API create and start of the busybox image
// with the same init as its SSH server, and the driver's StartTask, in
// interleaved rounds. It reports the medians and their ratio; one
// iteration is benchRounds rounds of each.
func BenchmarkStartToSSHBanner(b *testing.B) {
	d := newBenchDriver(b)
	_, docker, _, err := d.state()
	require.NoError(b, err)
	ctx := context.Background()
	key := newUserKey(b)

	// the raw container's init config, with the same keys a task gets
	hostKey, err := newHostKey()
	require.NoError(b, err)
	rawConfig := filepath.Join(b.TempDir(), "config.json")
	data, err := json.Marshal(&sshserver.Config{
		ListenAddress:  ":2222",
		User:           "root",
		AuthorizedKeys: []string{key.authorizedKey},
		HostKey:        hostKey.PEM,
		Command:        []string{"/bin/sh", "-c", "while :; do sleep 1; done"},
	})
	require.NoError(b, err)
	require.NoError(b, os.WriteFile(rawConfig, data, 0o600))

	var raw, driver []time.Duration
	for i := 0; i < b.N; i++ {
		for round := 0; round < benchRounds; round++ {
			// raw Docker
			port := freeSSHPort(b)
			started := time.Now()
			id := startRaw(ctx, b, d, rawConfig, port)
			require.NoError(b, waitForBanner(port, time.Now().Add(time.Minute)))
			raw = append(raw, time.Since(started))
			require.NoError(b, docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}))

			// the driver
			port = freeSSHPort(b)
			task := newTask(b, port, &TaskConfig{
				Image:   testImage,
				Command: "/bin/sh",
				Args:    []string{"-c", "while :; do sleep 1; done"},
				SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
			})
			cleanup := buildAllocDir(b, task)
			started = time.Now()
			_, _, err := d.StartTask(task)
			require.NoError(b, err)
			require.NoError(b, waitForBanner(port, time.Now().Add(time.Minute)))
			driver = append(driver, time.Since(started))
			require.NoError(b, d.DestroyTask(task.ID, true))
			cleanup()
		}
	}

	rawMedian, driverMedian := median(raw), median(driver)
	b.ReportMetric(float64(rawMedian.Microseconds())/1000, "raw-ms")
	b.ReportMetric(float64(driverMedian.Microseconds())/1000, "sshrerun-ms")
	b.ReportMetric(float64(driverMedian)/float64(rawMedian), "sshrerun/raw")
}
