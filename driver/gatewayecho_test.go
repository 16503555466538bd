package driver

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// gatewayEchoTestLabel marks the network and the containers of
// TestInit_GatewayEchoTeachesHost.
const gatewayEchoTestLabel = "nomad-driver-sshrerun.test"

// hostARPEntry returns the hardware address of the complete entry for ip
// on device in this host's IPv4 neighbour table, /proc/net/arp, or "" when
// there is none. Columns: IP address, HW type, Flags, HW address, Mask,
// Device.
func hostARPEntry(ip, device string) (string, error) {
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		return "", err
	}
	defer f.Close()

	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		// ATF_COM (0x2) marks a resolved entry
		if len(fields) >= 6 && fields[0] == ip && fields[2] == "0x2" && fields[5] == device {
			return fields[3], nil
		}
	}
	return "", scanner.Err()
}

// The driver turns the init's gateway echo on for its containers.
func TestDriver_InitConfigEchoesGateway(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	d.startTask(t, newSleepingSSHTask(t, port, key))

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, status := runSSH(t, c, "cat /.sshrerun/config.json")
	require.Equal(t, 0, status, out)
	var config sshserver.Config
	require.NoError(t, json.Unmarshal([]byte(out), &config))
	require.True(t, config.EchoGateway, "echo_gateway is off in the init config")
}

// The init's gateway echo teaches the Docker host the container's MAC
// address, although nothing on the host sent a packet to the container.
// Two containers run on a new network, whose bridge device starts without
// neighbour entries: first one whose init sends no echo, then one whose
// init does. Once the host has an entry for the second, it has none for
// the first, which had longer to get one.
//
// NET_RAW is dropped, as in the driver's default capabilities.
func TestInit_GatewayEchoTeachesHost(t *testing.T) {
	docker := testDockerClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	suffix := make([]byte, 6)
	_, err := rand.Read(suffix)
	require.NoError(t, err)
	labels := map[string]string{gatewayEchoTestLabel: t.Name()}
	created, err := docker.NetworkCreate(ctx, "sshrerun-echo-test-"+hex.EncodeToString(suffix), network.CreateOptions{Driver: "bridge", Labels: labels})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, docker.NetworkRemove(context.Background(), created.ID)) })
	// Docker names the bridge of a network br- and the first 12
	// characters of its ID
	device := "br-" + created.ID[:12]

	start := func(echo bool) *network.EndpointSettings {
		hostKey, err := newHostKey()
		require.NoError(t, err)
		config, err := json.Marshal(&sshserver.Config{
			ListenAddress:  ":2222",
			User:           "root",
			AuthorizedKeys: []string{newUserKey(t).authorizedKey},
			HostKey:        hostKey.PEM,
			Command:        []string{"/bin/sleep", "3600"},
			EchoGateway:    echo,
		})
		require.NoError(t, err)
		configPath := filepath.Join(t.TempDir(), "config.json")
		require.NoError(t, os.WriteFile(configPath, config, 0o600))

		ctr, err := docker.ContainerCreate(ctx, &container.Config{
			Image:      testImage,
			Entrypoint: []string{"/.sshrerun/init", "-config", "/.sshrerun/config.json"},
			Labels:     labels,
		}, &container.HostConfig{
			NetworkMode: container.NetworkMode(created.ID),
			CapDrop:     []string{"NET_RAW"},
			Mounts: []mount.Mount{
				{Type: mount.TypeBind, Source: testInitBinary, Target: "/.sshrerun/init", ReadOnly: true},
				{Type: mount.TypeBind, Source: configPath, Target: "/.sshrerun/config.json", ReadOnly: true},
			},
		}, nil, nil, "")
		require.NoError(t, err)
		// cleanups run in reverse order, so the containers go before the
		// network
		t.Cleanup(func() {
			require.NoError(t, docker.ContainerRemove(context.Background(), ctr.ID, container.RemoveOptions{Force: true}))
		})
		require.NoError(t, docker.ContainerStart(ctx, ctr.ID, container.StartOptions{}))

		info, err := docker.ContainerInspect(ctx, ctr.ID)
		require.NoError(t, err)
		require.True(t, info.State.Running, "the init exited: %+v", info.State)
		require.Len(t, info.NetworkSettings.Networks, 1, "the container should be on the test network only")
		for _, endpoint := range info.NetworkSettings.Networks {
			require.NotEmpty(t, endpoint.IPAddress, "the container has no IPv4 address")
			require.NotEmpty(t, endpoint.MacAddress, "the container has no MAC address")
			return endpoint
		}
		return nil
	}

	silent := start(false)
	echoing := start(true)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		mac, err := hostARPEntry(echoing.IPAddress, device)
		require.NoError(c, err)
		require.Equal(c, echoing.MacAddress, mac, "the host has no neighbour entry for %s on %s", echoing.IPAddress, device)
	}, 20*time.Second, 20*time.Millisecond)

	mac, err := hostARPEntry(silent.IPAddress, device)
	require.NoError(t, err)
	require.Empty(t, mac, fmt.Sprintf("the host has a neighbour entry for %s, whose init sent no echo", silent.IPAddress))
}
