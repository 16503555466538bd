package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"golang.org/x/crypto/ssh"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// Paths inside the containers that run container-init without the driver.
// They are the driver's own paths (driver/container/spec.go).
const (
	initBinaryPath = "/.sshrerun/nomad-driver-sshrerun"
	initConfigPath = "/.sshrerun/config.json"
	sshPort        = 2222
)

// benchLabel marks the raw Docker containers of this program.
const benchLabel = "nomad-driver-sshrerun.bench"

type keys struct {
	hostKeyPEM    string
	authorizedKey string
}

// newKeys generates the ed25519 host key of the init's SSH server and a
// user key, whose public half is the only authorized key.
func newKeys() (*keys, error) {
	_, hostPrivate, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate the host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(hostPrivate, "")
	if err != nil {
		return nil, fmt.Errorf("failed to encode the host key: %w", err)
	}

	userPublic, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate the user key: %w", err)
	}
	sshPublic, err := ssh.NewPublicKey(userPublic)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPublic)))
	return &keys{hostKeyPEM: string(pem.EncodeToMemory(block)), authorizedKey: line}, nil
}

// writeInitConfig writes the container-init config (the JSON fields of
// driver/sshserver.Config) that runs `sleep 3600` with SSH on port 2222.
// With echoGateway, the init sends an ICMP echo request to its gateway, as
// it does in the driver's containers.
func writeInitConfig(path string, k *keys, echoGateway bool) error {
	config := map[string]any{
		"listen_address":  ":" + strconv.Itoa(sshPort),
		"user":            "root",
		"authorized_keys": []string{k.authorizedKey},
		"host_key":        k.hostKeyPEM,
		"command":         []string{"/bin/sleep", "3600"},
		"echo_gateway":    echoGateway,
	}
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	// 0644, because the init reads it as the container's user. The host
	// key is generated for this run only.
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("failed to write the init config: %w", err)
	}
	return nil
}

// startRaw times ContainerCreate and ContainerStart until the SSH banner,
// then removes the container by its ID. With early, it connects from the
// create request on, as the Nomad runs do from Register. Otherwise it
// connects once ContainerStart has returned.
func startRaw(ctx context.Context, docker *client.Client, tracker *containerTracker, configPath string, round int, early bool) (time.Duration, error) {
	hostPort, err := harness.FreePort()
	if err != nil {
		return 0, err
	}
	port := nat.Port(strconv.Itoa(sshPort) + "/tcp")
	config := &container.Config{
		Image:        harness.TestImage,
		Entrypoint:   []string{initBinaryPath, "container-init", "-config", initConfigPath},
		Cmd:          []string{},
		ExposedPorts: nat.PortSet{port: struct{}{}},
		Labels:       map[string]string{benchLabel: "raw"},
	}
	hostConfig := &container.HostConfig{
		PortBindings: nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(hostPort)}}},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: harness.InitBinary(), Target: initBinaryPath, ReadOnly: true},
			{Type: mount.TypeBind, Source: configPath, Target: initConfigPath, ReadOnly: true},
		},
	}
	name := fmt.Sprintf("sshrerun-bench-raw-%d-%d", os.Getpid(), round)

	address := "127.0.0.1:" + strconv.Itoa(hostPort)
	type banner struct {
		elapsed time.Duration
		err     error
	}
	// buffered, so that the probe ends even when the start fails
	banners := make(chan banner, 1)
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	start := time.Now()
	probe := func() {
		err := waitForBanner(probeCtx, address)
		banners <- banner{time.Since(start), err}
	}
	if early {
		go probe()
	}
	created, err := docker.ContainerCreate(ctx, config, hostConfig, nil, nil, name)
	if err != nil {
		return 0, fmt.Errorf("failed to create container %s: %w", name, err)
	}
	tracker.add(created.ID)
	if err := docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return 0, fmt.Errorf("failed to start container %s: %w", created.ID, err)
	}
	if !early {
		probe()
	}
	result := <-banners
	if result.err != nil {
		return 0, fmt.Errorf("container %s: %w", created.ID, result.err)
	}
	elapsed := result.elapsed

	if err := docker.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil {
		return 0, fmt.Errorf("failed to remove container %s: %w", created.ID, err)
	}
	tracker.forget(created.ID)
	return elapsed, nil
}

// waitForBanner connects to addr every 5ms until the server sends a line
// that starts with SSH-2.0-. Docker's userland proxy accepts connections
// before the container listens and then closes them, so a connection alone
// proves nothing.
func waitForBanner(ctx context.Context, addr string) error {
	var last error
	for {
		banner, err := readBanner(addr)
		if err == nil && strings.HasPrefix(banner, "SSH-2.0-") {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected banner %q", banner)
		}
		last = err

		select {
		case <-ctx.Done():
			return fmt.Errorf("no SSH banner on %s: %w (last error: %v)", addr, ctx.Err(), last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func readBanner(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

// containerTracker records the containers that this program created or
// that its jobs created, so that removeAll can remove them by ID after a
// failure.
type containerTracker struct {
	docker *client.Client
	mu     sync.Mutex
	ids    map[string]bool
	names  []string
}

func (t *containerTracker) add(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids == nil {
		t.ids = map[string]bool{}
	}
	t.ids[id] = true
}

func (t *containerTracker) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.ids, id)
}

// addName records the container name of a job's task, `<task>-<alloc id>`
// for both Nomad drivers.
func (t *containerTracker) addName(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names = append(t.names, name)
}

// containersNamed returns the IDs of the containers, running or not,
// whose name is exactly name.
func containersNamed(ctx context.Context, docker *client.Client, name string) ([]string, error) {
	list, err := docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("name", "^/"+name+"$")),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to list containers named %s: %w", name, err)
	}
	ids := make([]string, 0, len(list))
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// removeAll force-removes every tracked container that still exists, by ID.
func (t *containerTracker) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.mu.Lock()
	ids := make([]string, 0, len(t.ids))
	for id := range t.ids {
		ids = append(ids, id)
	}
	names := append([]string(nil), t.names...)
	t.mu.Unlock()

	for _, name := range names {
		found, err := containersNamed(ctx, t.docker, name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
			continue
		}
		ids = append(ids, found...)
	}
	for _, id := range ids {
		err := t.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		if err != nil && !client.IsErrNotFound(err) {
			fmt.Fprintf(os.Stderr, "warning: failed to remove container %s: %v\n", id, err)
			continue
		}
		if err == nil {
			fmt.Printf("==> removed leftover container %s\n", id)
		}
	}
}
