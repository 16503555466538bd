package driver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/stretchr/testify/require"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// createSleeper creates and starts a container of the test image that runs
// until it is removed, with labels, and removes it when the test ends.
func createSleeper(t *testing.T, d *testDriver, name string, labels map[string]string) string {
	t.Helper()
	if allocID := labels[spec.LabelAllocID]; allocID != "" {
		testAllocIDs.add(allocID)
	}
	ctx := context.Background()
	created, err := d.docker.ContainerCreate(ctx, &container.Config{
		Image:      testImage,
		Entrypoint: []string{"/bin/sh", "-c", "while :; do sleep 0.1; done"},
		Labels:     labels,
	}, nil, nil, nil, name)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = d.docker.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	require.NoError(t, d.docker.ContainerStart(ctx, created.ID, container.StartOptions{}))
	return created.ID
}

// orphanLabels returns the labels that the driver puts on the container
// of task "build" in a new alloc under allocRoot.
func orphanLabels(allocRoot string) map[string]string {
	return map[string]string{
		spec.LabelManaged:   "true",
		spec.LabelAllocID:   uuid.Generate(),
		spec.LabelTaskName:  "build",
		spec.LabelAllocRoot: allocRoot,
	}
}

// containerExists reports whether the engine still has containerID.
func containerExists(t *testing.T, d *testDriver, containerID string) bool {
	t.Helper()
	_, err := d.docker.ContainerInspect(context.Background(), containerID)
	if cerrdefs.IsNotFound(err) {
		return false
	}
	require.NoError(t, err)
	return true
}

func TestReconcile_RemovesOnlyOwnOrphans(t *testing.T) {
	d := newTestDriverWith(t, nil, func(d *Driver) {
		d.reconcileGrace = 2 * time.Second
		d.reconcileInterval = 200 * time.Millisecond
	})

	// a tracked task teaches the driver its alloc root
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newSleepingSSHTask(t, port, key)
	handle, _ := d.startTask(t, task)
	tracked := taskState(t, handle).ContainerID
	root := allocRootOf(task.AllocDir)
	require.NotEmpty(t, root)

	// containers that are not this client's orphans, which belong to
	// another client on the same engine, to a driver version without the
	// alloc root label, and to no driver at all
	foreign := createSleeper(t, d, "build-"+uuid.Generate(), orphanLabels("/var/lib/other-client/alloc"))
	older := orphanLabels(root)
	delete(older, spec.LabelAllocRoot)
	withoutRoot := createSleeper(t, d, "build-"+uuid.Generate(), older)
	unlabeled := createSleeper(t, d, "sshrerun-test-"+uuid.Generate(), map[string]string{"test": "reconcile"})

	// the orphan is created last, so the pass that removes it lists the rest
	orphan := createSleeper(t, d, "build-"+uuid.Generate(), orphanLabels(root))

	deadline := time.Now().Add(30 * time.Second)
	for containerExists(t, d, orphan) {
		require.True(t, time.Now().Before(deadline), "the orphan %s was not removed within 30s", orphan)
		time.Sleep(100 * time.Millisecond)
	}

	require.True(t, containerExists(t, d, foreign), "the container of another alloc root was removed")
	require.True(t, containerExists(t, d, withoutRoot), "the container without an alloc root label was removed")
	require.True(t, containerExists(t, d, unlabeled), "the container without the project's labels was removed")
	info, err := d.docker.ContainerInspect(context.Background(), tracked)
	require.NoError(t, err, "the tracked task's container was removed")
	require.True(t, info.State.Running)

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, code := runSSH(t, c, "echo tracked")
	require.Equal(t, 0, code)
	require.Equal(t, "tracked\n", out)
}

func TestReconcile_KeepsRecoveredTask(t *testing.T) {
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newSleepingSSHTask(t, port, key)
	handle, _ := newTestDriver(t, nil).startTask(t, task)
	containerID := taskState(t, handle).ContainerID

	// a relaunched plugin learns the alloc root from RecoverTask alone
	recovered := newTestDriverWith(t, nil, func(d *Driver) {
		d.reconcileGrace = 2 * time.Second
		d.reconcileInterval = 200 * time.Millisecond
	})
	require.NoError(t, recovered.RecoverTask(handle))
	orphan := createSleeper(t, recovered, "build-"+uuid.Generate(), orphanLabels(allocRootOf(task.AllocDir)))

	deadline := time.Now().Add(30 * time.Second)
	for containerExists(t, recovered, orphan) {
		require.True(t, time.Now().Before(deadline), "the orphan %s was not removed within 30s", orphan)
		time.Sleep(100 * time.Millisecond)
	}

	info, err := recovered.docker.ContainerInspect(context.Background(), containerID)
	require.NoError(t, err, "the recovered task's container was removed")
	require.True(t, info.State.Running)
	require.NoError(t, recovered.DestroyTask(task.ID, true))
}

func TestReconcile_SparesYoungAndStartingContainers(t *testing.T) {
	// no pass of the loop runs during the test: each pass is called here
	d := newTestDriverWith(t, nil, func(d *Driver) {
		d.reconcileGrace = time.Hour
		d.reconcileInterval = time.Hour
	})
	root := filepath.Join(t.TempDir(), "alloc")
	d.impl.learnAllocRoot(filepath.Join(root, uuid.Generate()))

	young := createSleeper(t, d, "build-"+uuid.Generate(), orphanLabels(root))
	startingName := "build-" + uuid.Generate()
	starting := createSleeper(t, d, startingName, orphanLabels(root))
	d.impl.starting.add(startingName)

	// both are younger than the grace
	ctx := context.Background()
	removed, err := d.impl.removeOrphans(ctx, time.Now())
	require.NoError(t, err)
	require.Empty(t, removed)

	// past the grace, the one that a StartTask is creating stays
	later := time.Now().Add(2 * time.Hour)
	removed, err = d.impl.removeOrphans(ctx, later)
	require.NoError(t, err)
	require.Equal(t, []string{young}, removed)
	require.True(t, containerExists(t, d, starting))

	// once that StartTask returned without a handle, it is an orphan too
	d.impl.starting.remove(startingName)
	removed, err = d.impl.removeOrphans(ctx, later)
	require.NoError(t, err)
	require.Equal(t, []string{starting}, removed)
	require.False(t, containerExists(t, d, young))
	require.False(t, containerExists(t, d, starting))
}

func TestReconcile_NoAllocRootNoRemoval(t *testing.T) {
	d := newTestDriverWith(t, nil, func(d *Driver) {
		d.reconcileGrace = time.Hour
		d.reconcileInterval = time.Hour
	})
	orphan := createSleeper(t, d, "build-"+uuid.Generate(), orphanLabels(filepath.Join(t.TempDir(), "alloc")))

	removed, err := d.impl.removeOrphans(context.Background(), time.Now().Add(2*time.Hour))
	require.NoError(t, err)
	require.Empty(t, removed)
	require.True(t, containerExists(t, d, orphan))
}

func TestAllocRootOf(t *testing.T) {
	cases := []struct {
		allocDir string
		want     string
	}{
		{"/var/lib/nomad/alloc/0b1c", "/var/lib/nomad/alloc"},
		{"/var/lib/nomad/alloc/0b1c/", "/var/lib/nomad/alloc"},
		{"", ""},
		{"alloc/0b1c", ""},
		{"/0b1c", ""},
	}
	for _, tc := range cases {
		t.Run(tc.allocDir, func(t *testing.T) {
			require.Equal(t, tc.want, allocRootOf(tc.allocDir))
		})
	}
}
