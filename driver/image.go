package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/hashicorp/go-hclog"
)

// pullProgressInterval is how often a pull reports its progress as a task
// event.
const pullProgressInterval = 5 * time.Second

// ensureImage returns the image's details, pulling the image first when it
// is not present or the task sets force_pull.
func (d *Driver) ensureImage(ctx context.Context, docker *client.Client, taskConfig *TaskConfig, authConfig string, activityTimeout time.Duration, report func(string), logger hclog.Logger) (image.InspectResponse, error) {
	ref := taskConfig.Image
	if !taskConfig.ForcePull {
		img, err := docker.ImageInspect(ctx, ref)
		if err == nil {
			return img, nil
		}
		if !cerrdefs.IsNotFound(err) {
			return image.InspectResponse{}, fmt.Errorf("failed to inspect image %q: %w", ref, err)
		}
	}

	auth, err := pullAuth(taskConfig, authConfig, logger)
	if err != nil {
		return image.InspectResponse{}, err
	}
	if err := pullImage(ctx, docker, ref, auth, activityTimeout, report, logger); err != nil {
		return image.InspectResponse{}, err
	}
	img, err := docker.ImageInspect(ctx, ref)
	if err != nil {
		return image.InspectResponse{}, fmt.Errorf("failed to inspect image %q after pulling it: %w", ref, err)
	}
	return img, nil
}

// pullAuth returns the credentials of a pull: the task's auth block, or
// else the plugin's auth_config entry for the image's registry, or nil.
func pullAuth(taskConfig *TaskConfig, authConfig string, logger hclog.Logger) (*registry.AuthConfig, error) {
	if auth := taskConfig.Auth; auth != nil {
		return &registry.AuthConfig{Username: auth.Username, Password: auth.Password, ServerAddress: auth.ServerAddress}, nil
	}
	return pluginAuth(authConfig, taskConfig.Image, logger)
}

// pullImage pulls ref and reports its progress. The pull is cancelled when
// the engine reports no progress for activityTimeout.
func pullImage(ctx context.Context, docker *client.Client, ref string, auth *registry.AuthConfig, activityTimeout time.Duration, report func(string), logger hclog.Logger) error {
	options := image.PullOptions{}
	if auth != nil {
		encoded, err := registry.EncodeAuthConfig(*auth)
		if err != nil {
			return fmt.Errorf("failed to encode the registry credentials: %w", err)
		}
		options.RegistryAuth = encoded
	}

	pullCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := newActivityWatchdog(activityTimeout, func() {
		cancel(fmt.Errorf("no progress for %s", activityTimeout))
	})
	defer watchdog.stop()

	logger.Info("pulling image", "image", ref)
	report(fmt.Sprintf("Downloading image %s", ref))
	started := time.Now()

	body, err := docker.ImagePull(pullCtx, ref, options)
	if err != nil {
		return pullError(ref, pullCtx, err)
	}
	defer body.Close()

	progress := newPullProgress()
	decoder := json.NewDecoder(body)
	lastReport := time.Now()
	for {
		var msg jsonmessage.JSONMessage
		if err := decoder.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return pullError(ref, pullCtx, err)
		}
		watchdog.touch()
		if msg.Error != nil {
			return pullError(ref, pullCtx, errors.New(msg.Error.Message))
		}
		progress.update(&msg)
		if time.Since(lastReport) >= pullProgressInterval {
			report(fmt.Sprintf("Image %s pull progress: %s", ref, progress))
			lastReport = time.Now()
		}
	}

	logger.Info("pulled image", "image", ref, "duration", time.Since(started).Round(time.Millisecond).String())
	report(fmt.Sprintf("Downloaded image %s in %s", ref, time.Since(started).Round(time.Millisecond)))
	return nil
}

func pullError(ref string, ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	return fmt.Errorf("failed to pull image %q: %w; check the image name, that the registry is reachable from this client, and the task's auth block or the plugin's auth_config", ref, err)
}

// pullProgress sums the bytes of each layer that the engine reports.
type pullProgress struct {
	current map[string]int64
	total   map[string]int64
}

func newPullProgress() *pullProgress {
	return &pullProgress{current: map[string]int64{}, total: map[string]int64{}}
}

func (p *pullProgress) update(msg *jsonmessage.JSONMessage) {
	if msg.ID == "" || msg.Progress == nil || msg.Status != "Downloading" {
		return
	}
	p.current[msg.ID] = msg.Progress.Current
	if msg.Progress.Total > 0 {
		p.total[msg.ID] = msg.Progress.Total
	}
}

func (p *pullProgress) String() string {
	var current, total int64
	for _, v := range p.current {
		current += v
	}
	for _, v := range p.total {
		total += v
	}
	return fmt.Sprintf("%.1f MiB of %.1f MiB in %d layers", float64(current)/(1<<20), float64(total)/(1<<20), len(p.total))
}

// activityWatchdog calls expire when touch was not called for timeout.
type activityWatchdog struct {
	mu    sync.Mutex
	timer *time.Timer
	d     time.Duration
}

func newActivityWatchdog(timeout time.Duration, expire func()) *activityWatchdog {
	return &activityWatchdog{timer: time.AfterFunc(timeout, expire), d: timeout}
}

func (w *activityWatchdog) touch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Reset(w.d)
}

func (w *activityWatchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Stop()
}
