package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// announceTestLabel marks the network and the container of
// TestInit_AnnouncesContainerAddress.
const announceTestLabel = "nomad-driver-sshrerun.test"

// hostARPEntry returns the hardware address of the complete entry for ip
// on device in this host's IPv4 neighbour table, /proc/net/arp, or "" when
// there is none. Columns: IP address, HW type, Flags, HW address, Mask,
// Device.
func hostARPEntry(t *testing.T, ip, device string) string {
	t.Helper()
	f, err := os.Open("/proc/net/arp")
	require.NoError(t, err)
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		// ATF_COM (0x2) marks a resolved entry
		if len(fields) >= 6 && fields[0] == ip && fields[2] == "0x2" && fields[5] == device {
			return fields[3]
		}
	}
	require.NoError(t, scanner.Err())
	return ""
}

// The driver turns the init's address announcement on for its containers.
func TestDriver_InitConfigAnnouncesAddress(t *testing.T) {
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
	require.True(t, config.AnnounceAddress, "announce_address is off in the init config")
}

// The init announces the container's address when it starts: the Docker
// host learns the container's MAC address although nothing on the host
// sent a packet to the container. The container runs on a new network,
// whose bridge device has no neighbour entries yet, so an entry cannot be
// left from an earlier container with the same address. NET_RAW is
// dropped, as in the driver's default capabilities.
func TestInit_AnnouncesContainerAddress(t *testing.T) {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	defer docker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	hostKey, err := newHostKey()
	require.NoError(t, err)
	config, err := json.Marshal(&sshserver.Config{
		ListenAddress:   ":2222",
		User:            "root",
		AuthorizedKeys:  []string{newUserKey(t).authorizedKey},
		HostKey:         hostKey.PEM,
		Command:         []string{"/bin/sleep", "3600"},
		AnnounceAddress: true,
	})
	require.NoError(t, err)
	configPath := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(configPath, config, 0o600))

	labels := map[string]string{announceTestLabel: t.Name()}
	created, err := docker.NetworkCreate(ctx, "sshrerun-announce-"+filepath.Base(t.TempDir()), network.CreateOptions{Driver: "bridge", Labels: labels})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, docker.NetworkRemove(context.Background(), created.ID)) })

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
	// registered after the network's removal, so that it runs before it
	t.Cleanup(func() {
		require.NoError(t, docker.ContainerRemove(context.Background(), ctr.ID, container.RemoveOptions{Force: true}))
	})
	require.NoError(t, docker.ContainerStart(ctx, ctr.ID, container.StartOptions{}))

	info, err := docker.ContainerInspect(ctx, ctr.ID)
	require.NoError(t, err)
	require.True(t, info.State.Running, "the init exited: %+v", info.State)
	endpoint := info.NetworkSettings.Networks[info.HostConfig.NetworkMode.NetworkName()]
	if endpoint == nil {
		for _, e := range info.NetworkSettings.Networks {
			endpoint = e
		}
	}
	require.NotNil(t, endpoint, "the container is on no network")
	require.NotEmpty(t, endpoint.IPAddress, "the container has no IPv4 address")
	// Docker names the bridge of a network br- and the first 12 characters
	// of its ID
	device := "br-" + created.ID[:12]

	require.Eventually(t, func() bool {
		return hostARPEntry(t, endpoint.IPAddress, device) == endpoint.MacAddress
	}, 20*time.Second, 20*time.Millisecond, "the host has no neighbour entry %s at %s on %s", endpoint.IPAddress, endpoint.MacAddress, device)
}
