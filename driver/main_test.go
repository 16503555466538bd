package driver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// testImage is the FROM-scratch busybox image that hack/images/busybox.sh
// builds: no SSH server and no /etc/passwd.
const testImage = "nomad-driver-sshrerun/busybox:local"

// testInitBinary is the container init that the plugin embeds, built once
// for the package, which the driver mounts into containers.
var testInitBinary string

// TestMain builds the container init and checks the Docker engine and the
// test image. After the tests, no container of any allocation that the
// tests created may remain.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sshrerun-driver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	testInitBinary = filepath.Join(dir, "sshrerun-init")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", testInitBinary, "../plugin/containerinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "failed to build the container init: %v\n%s", err, out)
		return 1
	}

	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, image := range []string{testImage, testUserImage} {
		if _, err := docker.ImageInspect(ctx, image); err != nil {
			fmt.Fprintf(os.Stderr, "the test image %s is missing (%v); run `make images`, which needs a running Docker engine\n", image, err)
			return 1
		}
	}

	code := m.Run()

	var leftover []string
	for _, allocID := range testAllocIDs.list() {
		ids, err := projectContainers(docker, spec.LabelAllocID+"="+allocID)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		leftover = append(leftover, ids...)
	}
	if len(leftover) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: containers with the label %s left after the tests: %v\n", spec.LabelManaged, leftover)
		for _, id := range leftover {
			_ = docker.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true})
		}
		return 1
	}
	return code
}

// allocIDs is the set of allocation IDs that the tests used.
type allocIDs struct {
	mu  sync.Mutex
	ids []string
}

var testAllocIDs allocIDs

func (a *allocIDs) add(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
}

func (a *allocIDs) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.ids...)
}

// projectContainers returns the IDs of all containers with the project's
// label, running or not.
func projectContainers(docker *client.Client, extraLabels ...string) ([]string, error) {
	args := filters.NewArgs(filters.Arg("label", spec.LabelManaged+"=true"))
	for _, label := range extraLabels {
		args.Add("label", label)
	}
	list, err := docker.ContainerList(context.Background(), container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("failed to list containers: %w", err)
	}
	ids := make([]string, 0, len(list))
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}
