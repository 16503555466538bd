package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// Defaults of the reconciler's timing. Nomad 1.6.3 calls RecoverTask for
// each running task as soon as it detects that the plugin exited, or when the
// agent restores its allocations at start. A minute for that is an
// estimate with a wide margin.
const (
	defaultReconcileGrace    = time.Minute
	defaultReconcileInterval = 30 * time.Second
)

// reconcileLoop removes orphans, which are containers of this client that
// no task handle tracks. One example is the container of a StartTask that
// Nomad 1.6.3 gave up on after the plugin died in it twice. Nomad calls
// DestroyTask only for a task with a handle, so nothing else removes them.
// The first pass runs once reconcileGrace has passed since the loop
// started, then one pass runs each reconcileInterval until the plugin
// shuts down.
func (d *Driver) reconcileLoop() {
	timer := time.NewTimer(d.reconcileGrace)
	defer timer.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-timer.C:
		}

		if _, err := d.removeOrphans(d.ctx, time.Now()); err != nil {
			d.logger.Warn("failed to reconcile containers", "error", err)
		}
		timer.Reset(d.reconcileInterval)
	}
}

// removeOrphans removes the containers that carry LabelManaged and one of
// this client's alloc roots, that no task handle tracks, that no StartTask
// in progress is creating, and that are older than reconcileGrace. It
// returns the IDs of the containers it removed.
func (d *Driver) removeOrphans(ctx context.Context, now time.Time) ([]string, error) {
	roots := d.allocRoots.list()
	if len(roots) == 0 {
		// NOTE: a relaunched plugin learns the alloc root only from a
		// StartTask or RecoverTask call, so until the client starts or
		// recovers a task, orphans stay.
		d.logger.Debug("skipping the reconcile pass because no alloc root is known yet")
		return nil, nil
	}
	_, docker, _, err := d.state()
	if err != nil {
		return nil, err
	}

	var removed []string
	for _, root := range roots {
		args := filters.NewArgs(
			filters.Arg("label", spec.LabelManaged+"=true"),
			filters.Arg("label", spec.LabelAllocRoot+"="+root),
		)
		listCtx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
		list, err := docker.ContainerList(listCtx, container.ListOptions{All: true, Filters: args})
		cancel()
		if err != nil {
			return removed, fmt.Errorf("failed to list the containers of alloc root %s: %w", root, err)
		}

		for _, c := range list {
			reason := d.orphanReason(c, root, now)
			if reason == "" {
				continue
			}
			if err := d.removeOrphan(ctx, c, reason); err != nil {
				d.logger.Warn("failed to remove a container that no task handle tracks",
					"container_id", c.ID, "alloc_id", c.Labels[spec.LabelAllocID],
					"task_name", c.Labels[spec.LabelTaskName], "error", err)
				continue
			}
			removed = append(removed, c.ID)
		}
	}
	return removed, nil
}

// orphanReason returns why c is an orphan, or "" when it must stay.
func (d *Driver) orphanReason(c container.Summary, root string, now time.Time) string {
	// the engine filtered on these labels, and they are checked again
	// because a removal cannot be undone
	if c.Labels[spec.LabelManaged] != "true" || c.Labels[spec.LabelAllocRoot] != root {
		return ""
	}
	if d.tracks(c.ID) || d.starting.contains(containerName(c)) {
		return ""
	}
	age := now.Sub(time.Unix(c.Created, 0))
	if age < d.reconcileGrace {
		return ""
	}
	return fmt.Sprintf("%s container created %s ago, past the grace of %s, with no task handle and no StartTask in progress",
		c.State, age.Round(time.Second), d.reconcileGrace)
}

// removeOrphan force-removes c and logs the removal.
func (d *Driver) removeOrphan(ctx context.Context, c container.Summary, reason string) error {
	_, docker, _, err := d.state()
	if err != nil {
		return err
	}
	removeCtx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	if err := docker.ContainerRemove(removeCtx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		return fmt.Errorf("failed to remove container %s: %w", c.ID, err)
	}
	d.logger.Info("removed a container that no task handle tracks",
		"container_id", c.ID, "alloc_id", c.Labels[spec.LabelAllocID],
		"task_name", c.Labels[spec.LabelTaskName], "reason", reason)
	return nil
}

// tracks reports whether a task handle holds containerID.
func (d *Driver) tracks(containerID string) bool {
	for _, h := range d.tasks.All() {
		if h.containerID == containerID {
			return true
		}
	}
	return false
}

// containerName returns c's name without the engine's leading slash.
func containerName(c container.Summary) string {
	if len(c.Names) == 0 {
		return ""
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

// learnAllocRoot records the client's alloc root from a task's alloc dir.
func (d *Driver) learnAllocRoot(allocDir string) {
	root := allocRootOf(allocDir)
	if root == "" || d.allocRoots.contains(root) {
		return
	}
	d.allocRoots.add(root)
	d.logger.Info("reconciling the containers of alloc root", "alloc_root", root,
		"grace", d.reconcileGrace.String(), "interval", d.reconcileInterval.String())
}

// allocRootOf returns the client's alloc directory, the parent of the
// task's alloc dir, or "" when the task config has no absolute alloc dir.
func allocRootOf(allocDir string) string {
	if allocDir == "" || !filepath.IsAbs(allocDir) {
		return ""
	}
	root := filepath.Dir(filepath.Clean(allocDir))
	if root == "/" {
		return ""
	}
	return root
}

// stringSet is a set of strings that is safe for concurrent use: the
// client's alloc roots, or the container names of the StartTask calls in
// progress.
type stringSet struct {
	mu    sync.Mutex
	items map[string]int
}

func newStringSet() *stringSet {
	return &stringSet{items: map[string]int{}}
}

// add adds item. Each add needs its own remove.
func (s *stringSet) add(item string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items[item]++
}

func (s *stringSet) remove(item string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items[item] <= 1 {
		delete(s.items, item)
		return
	}
	s.items[item]--
}

func (s *stringSet) contains(item string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.items[item] > 0
}

func (s *stringSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	items := make([]string, 0, len(s.items))
	for item := range s.items {
		items = append(items, item)
	}
	return items
}
