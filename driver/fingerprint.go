package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
)

// Node attributes that the fingerprint publishes. Jobs can constrain on
// them, and services can use them as their address.
const (
	AttrDetected        = "driver." + DriverName
	AttrVersion         = "driver." + DriverName + ".version"
	AttrAdvertiseIPv4   = "driver." + DriverName + ".advertise.ipv4"
	AttrAdvertiseIPv6   = "driver." + DriverName + ".advertise.ipv6"
	AttrAdvertiseSource = "driver." + DriverName + ".advertise.source"

	// AttrAdvertiseStale is true while the address comes from an earlier
	// resolution because refreshing it failed.
	AttrAdvertiseStale = "driver." + DriverName + ".advertise.stale"
)

// fingerprintCheckInterval is how often the loop checks whether the
// override file changed. Metadata is queried only once the cached address
// is older than the refresh interval, so this costs one stat per tick.
const fingerprintCheckInterval = 2 * time.Second

// Fingerprint returns a channel that receives the driver's health and node
// attributes: at once, whenever they change, and at least once per refresh
// interval.
func (d *Driver) Fingerprint(ctx context.Context) (<-chan *drivers.Fingerprint, error) {
	settings, _, _, err := d.state()
	if err != nil {
		return nil, err
	}

	ch := make(chan *drivers.Fingerprint)
	go d.fingerprintLoop(ctx, ch, settings.refreshInterval)
	return ch, nil
}

func (d *Driver) fingerprintLoop(ctx context.Context, ch chan<- *drivers.Fingerprint, refresh time.Duration) {
	defer close(ch)

	interval := min(fingerprintCheckInterval, refresh)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	var last *drivers.Fingerprint
	var lastSent time.Time
	for {
		fp := d.buildFingerprint(ctx)
		if last == nil || !sameFingerprint(last, fp) || time.Since(lastSent) >= refresh {
			select {
			case ch <- fp:
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			}
			last, lastSent = fp, time.Now()
		}

		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		case <-d.ctx.Done():
			return
		}
	}
}

// buildFingerprint checks the Docker engine and the advertised address.
func (d *Driver) buildFingerprint(ctx context.Context) *drivers.Fingerprint {
	settings, docker, resolver, err := d.state()
	if err != nil {
		return &drivers.Fingerprint{Health: drivers.HealthStateUndetected, HealthDescription: err.Error()}
	}

	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := docker.Ping(pingCtx); err != nil {
		return &drivers.Fingerprint{
			Health:            drivers.HealthStateUndetected,
			HealthDescription: fmt.Sprintf("the Docker engine at %s is not reachable: %v; start the engine, or set docker_endpoint in the plugin config to where it listens", settings.dockerEndpoint, err),
		}
	}

	attrs := map[string]*pstructs.Attribute{
		AttrDetected: pstructs.NewBoolAttribute(true),
		AttrVersion:  pstructs.NewStringAttribute(PluginVersion),
	}

	current, err := d.currentAddress(ctx, settings, resolver)
	if err != nil {
		// the other family may have resolved: publish what did
		if result, cachedErr, ok := resolver.Cached(); ok && cachedErr == nil {
			addAddressAttributes(attrs, result)
		}
		return &drivers.Fingerprint{
			Attributes:        attrs,
			Health:            drivers.HealthStateUnhealthy,
			HealthDescription: fmt.Sprintf("no address to advertise for SSH: %v", err),
		}
	}

	addAddressAttributes(attrs, current.result)
	attrs[AttrAdvertiseSource] = pstructs.NewStringAttribute(string(current.source))
	attrs[AttrAdvertiseStale] = pstructs.NewBoolAttribute(current.staleErr != nil)
	d.announceAddress(current.address.String(), string(current.source))

	description := drivers.DriverHealthy
	if current.staleErr != nil {
		description = staleDescription(current)
	}
	return &drivers.Fingerprint{
		Attributes:        attrs,
		Health:            drivers.HealthStateHealthy,
		HealthDescription: description,
	}
}

// addAddressAttributes publishes the resolved addresses of both families.
func addAddressAttributes(attrs map[string]*pstructs.Attribute, result advertise.Result) {
	if result.IPv4.IsValid() {
		attrs[AttrAdvertiseIPv4] = pstructs.NewStringAttribute(result.IPv4.String())
	}
	if result.IPv6.IsValid() {
		attrs[AttrAdvertiseIPv6] = pstructs.NewStringAttribute(result.IPv6.String())
	}
}

func sameFingerprint(a, b *drivers.Fingerprint) bool {
	if a.Health != b.Health || a.HealthDescription != b.HealthDescription || len(a.Attributes) != len(b.Attributes) {
		return false
	}
	for key, value := range a.Attributes {
		other, ok := b.Attributes[key]
		if !ok || value.GoString() != other.GoString() {
			return false
		}
	}
	return true
}
