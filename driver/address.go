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
// changed.
type lastGood struct {
	mu     sync.Mutex
	result *advertise.Result
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
		d.lastGood.mu.Lock()
		d.lastGood.result = &result
		d.lastGood.mu.Unlock()
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
