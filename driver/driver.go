// Package driver implements the sshrerun Nomad task driver: it runs job
// containers through the Docker Engine API and makes each one reachable
// over SSH at an address that users outside the cluster can reach.
package driver

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/initbin"
)

// Driver is the sshrerun task driver.
type Driver struct {
	// eventer sends task events, such as the ssh command, to Nomad.
	eventer *eventer.Eventer

	// ctx is cancelled when the plugin shuts down, which ends the
	// fingerprint loop and the handles' wait goroutines.
	ctx    context.Context
	cancel context.CancelFunc

	logger hclog.Logger
	tasks  *taskStore

	// mu guards the fields that SetConfig replaces.
	mu       sync.RWMutex
	settings *settings
	docker   *client.Client
	resolver *advertise.Resolver

	// lastGood is the last address that resolved.
	lastGood lastGood

	// initBinary is the host path of the static binary that is mounted into
	// containers as their init: the init that the plugin carries, once
	// SetConfig installed it, or else this plugin's own executable. mu
	// guards it.
	initBinary string

	// embeddedInit is the init that the plugin carries, or nil.
	embeddedInit []byte

	// allocRoots are the client's alloc directories, learned from the task
	// configs of StartTask and RecoverTask. The reconciler touches only
	// containers labeled with one of them.
	allocRoots *stringSet

	// starting are the container names of the StartTask calls in progress,
	// whose containers no handle tracks yet.
	starting *stringSet

	// reconcileGrace is both the wait before the reconciler's first pass
	// and the minimum age of a container that it removes, so that Nomad
	// can hand running tasks back through RecoverTask first.
	reconcileGrace time.Duration

	// reconcileInterval is the time between the reconciler's passes.
	reconcileInterval time.Duration

	// reconcileStart starts the reconciler at the first SetConfig.
	reconcileStart sync.Once
}

// NewPlugin returns the driver, ready for SetConfig.
func NewPlugin(logger hclog.Logger) *Driver {
	ctx, cancel := context.WithCancel(context.Background())
	logger = logger.Named(DriverName)

	initBinary, err := os.Executable()
	if err != nil {
		logger.Error("failed to find the plugin's own executable; SSH tasks will fail", "error", err)
	}

	return &Driver{
		eventer:      eventer.NewEventer(ctx, logger),
		ctx:          ctx,
		cancel:       cancel,
		logger:       logger,
		tasks:        newTaskStore(),
		initBinary:   initBinary,
		embeddedInit: initbin.Embedded(),

		allocRoots:        newStringSet(),
		starting:          newStringSet(),
		reconcileGrace:    defaultReconcileGrace,
		reconcileInterval: defaultReconcileInterval,
	}
}

// PluginInfo returns the plugin's identity.
func (d *Driver) PluginInfo() (*base.PluginInfoResponse, error) {
	return pluginInfo, nil
}

// ConfigSchema returns the schema of the client's plugin block.
func (d *Driver) ConfigSchema() (*hclspec.Spec, error) {
	return configSpec, nil
}

// SetConfig validates the plugin block and connects to the Docker engine.
// Nomad calls it once at start, before any other call.
func (d *Driver) SetConfig(cfg *base.Config) error {
	var pluginConfig PluginConfig
	if len(cfg.PluginConfig) != 0 {
		if err := base.MsgPackDecode(cfg.PluginConfig, &pluginConfig); err != nil {
			return fmt.Errorf("failed to decode the plugin config: %w", err)
		}
	}
	applyAdvertiseDefaults(&pluginConfig)

	settings, err := validatePluginConfig(&pluginConfig)
	if err != nil {
		return err
	}

	if err := d.checkAuthConfig(settings.authConfig); err != nil {
		return err
	}

	docker, err := newDockerClient(settings.dockerEndpoint)
	if err != nil {
		return err
	}

	advConfig := settings.advertise
	advConfig.Logger = d.logger
	resolver, err := advertise.NewResolver(advConfig)
	if err != nil {
		return fmt.Errorf("plugin config advertise: %w", err)
	}

	if err := initbin.PrepareDir(settings.dataDir); err != nil {
		_ = docker.Close()
		return fmt.Errorf("plugin config data_dir: %w", err)
	}
	if err := d.installInit(settings.dataDir); err != nil {
		_ = docker.Close()
		return err
	}
	d.loadLastAddress(settings.dataDir)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.docker != nil {
		_ = d.docker.Close()
	}
	d.settings = settings
	d.docker = docker
	d.resolver = resolver

	d.logger.Info("plugin configured",
		"docker_endpoint", settings.dockerEndpoint,
		"data_dir", settings.dataDir,
		"override_file", advConfig.OverrideFile,
		"imds_endpoint", advConfig.IMDSEndpoint,
		"imds_timeout", advConfig.IMDSTimeout.String(),
		"local_ipv4_fallback", advConfig.LocalIPv4Fallback,
		"refresh_interval", settings.refreshInterval.String(),
		"auth_config", settings.authConfig)

	d.reconcileStart.Do(func() { go d.reconcileLoop() })
	return nil
}

// applyAdvertiseDefaults fills the spec's defaults in when the advertise
// block is absent, which decodes to nil.
func applyAdvertiseDefaults(cfg *PluginConfig) {
	if cfg.Advertise == nil {
		cfg.Advertise = &AdvertiseConfig{LocalIPv4Fallback: true}
	}
}

// TaskConfigSchema returns the schema of a task's config block.
func (d *Driver) TaskConfigSchema() (*hclspec.Spec, error) {
	return taskConfigSpec, nil
}

// Capabilities returns what the driver supports.
func (d *Driver) Capabilities() (*drivers.Capabilities, error) {
	return capabilities, nil
}

// TaskEvents returns the stream of task events for Nomad.
func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

// Shutdown stops the fingerprint loop and the handles' goroutines. Running
// containers keep running, so that a restarted plugin can recover them.
func (d *Driver) Shutdown() {
	d.cancel()
}

// state returns the configured clients. It fails before SetConfig.
func (d *Driver) state() (*settings, *client.Client, *advertise.Resolver, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.settings == nil {
		return nil, nil, nil, fmt.Errorf("the plugin is not configured yet")
	}
	return d.settings, d.docker, d.resolver, nil
}
