package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
)

// advertised is the address that ssh commands use.
type advertised struct {
	result  advertise.Result
	address netip.Addr
	source  advertise.Source

	// staleErr is the error of the refresh that failed, when the address
	// comes from an earlier resolution; nil when it is fresh.
	staleErr error
}

// lastGood keeps the last address that resolved, so that a metadata
// outage does not take SSH away from a client whose address has not
// changed. store keeps it across plugin restarts within one boot.
type lastGood struct {
	mu      sync.Mutex
	result  *advertise.Result
	store   addressStore
	savedAt time.Time
}

// lastAddressSaveEvery is how often an unchanged address is saved again,
// so that the time of a saved address that a restarted plugin serves stays
// recent.
const lastAddressSaveEvery = 5 * time.Minute

// rememberAddress makes result the last good address, and saves it when
// its addresses changed or the saved copy is older than
// lastAddressSaveEvery.
func (d *Driver) rememberAddress(result advertise.Result) {
	d.lastGood.mu.Lock()
	previous := d.lastGood.result
	d.lastGood.result = &result
	store := d.lastGood.store
	unchanged := previous != nil && sameAddresses(*previous, result) && time.Since(d.lastGood.savedAt) < lastAddressSaveEvery
	if !unchanged {
		d.lastGood.savedAt = time.Now()
	}
	d.lastGood.mu.Unlock()

	if unchanged {
		return
	}
	if err := store.save(result); err != nil {
		d.logger.Warn("failed to save the last address that resolved", "error", err)
	}
}

// loadLastAddress makes the address saved in data_dir during this boot the
// last good address, unless one resolved already.
func (d *Driver) loadLastAddress(dataDir string) {
	store, err := newAddressStore(dataDir)
	if err != nil {
		d.logger.Warn("the last address that resolved is kept in memory only", "error", err)
	}
	saved, err := store.load()
	if err != nil {
		d.logger.Warn("failed to load the last address that resolved", "error", err)
	}

	d.lastGood.mu.Lock()
	defer d.lastGood.mu.Unlock()
	d.lastGood.store = store
	if saved == nil || d.lastGood.result != nil {
		return
	}
	d.lastGood.result = saved
	d.logger.Info("loaded the last address that resolved in this boot", "path", store.path,
		"ipv4", saved.IPv4.String(), "ipv6", saved.IPv6.String(), "resolved_at", saved.ResolvedAt)
}

// currentAddress returns the address for the configured family. When a
// refresh fails because metadata is unreachable, it returns the last
// address that resolved, marked stale. It never does so when the override
// file exists: an invalid override file is the operator's error to fix.
func (d *Driver) currentAddress(ctx context.Context, settings *settings, resolver *advertise.Resolver) (*advertised, error) {
	result, err := resolver.Current(ctx, settings.refreshInterval)
	if err == nil {
		address, source, err := result.Address(settings.family)
		if err != nil {
			return nil, err
		}
		d.rememberAddress(result)
		return &advertised{result: result, address: address, source: source}, nil
	}

	if _, statErr := os.Lstat(settings.advertise.OverrideFile); !errors.Is(statErr, os.ErrNotExist) {
		return nil, err
	}
	d.lastGood.mu.Lock()
	previous := d.lastGood.result
	d.lastGood.mu.Unlock()
	if previous == nil {
		return nil, err
	}
	address, source, addrErr := previous.Address(settings.family)
	if addrErr != nil {
		return nil, err
	}
	return &advertised{result: *previous, address: address, source: source, staleErr: err}, nil
}

// staleDescription is the health description of a stale address.
func staleDescription(a *advertised) string {
	return fmt.Sprintf("Healthy, but the advertised address %s is from %s because the refresh failed: %v",
		a.address, a.result.ResolvedAt.UTC().Format(time.RFC3339), a.staleErr)
}
