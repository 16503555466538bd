package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
)

// lastAddressFile is the file in data_dir that keeps the last address that
// resolved, so that a plugin that restarts during a metadata outage can go
// on serving it, marked stale.
const lastAddressFile = "last-address.json"

// bootIDPath names the current boot of the host. An address saved in an
// earlier boot is never loaded, because an instance that was stopped and
// started again may have a new public address.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// savedAddress is the content of lastAddressFile.
type savedAddress struct {
	BootID string           `json:"boot_id"`
	Result advertise.Result `json:"result"`
}

// addressStore saves and loads the last address that resolved in a file.
// A store with an empty path or boot ID does nothing.
type addressStore struct {
	path   string
	bootID string
}

// newAddressStore returns the store of dataDir, or an inactive one when the
// boot ID cannot be read.
func newAddressStore(dataDir string) (addressStore, error) {
	data, err := os.ReadFile(bootIDPath)
	if err != nil {
		return addressStore{}, fmt.Errorf("failed to read the boot ID from %s, so the last address is kept in memory only: %w", bootIDPath, err)
	}
	return addressStore{path: filepath.Join(dataDir, lastAddressFile), bootID: strings.TrimSpace(string(data))}, nil
}

// load returns the address saved in this boot, or nil when there is none.
func (s addressStore) load() (*advertise.Result, error) {
	if s.path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the last address from %s: %w", s.path, err)
	}
	var saved savedAddress
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("the last address file %s is not valid JSON, so it is ignored and replaced at the next resolution: %w", s.path, err)
	}
	if saved.BootID != s.bootID {
		return nil, nil
	}
	return &saved.Result, nil
}

// save writes result, without its trace, which only the advertise command
// shows. The file is written whole through a rename, so a crash leaves the
// old or the new one.
func (s addressStore) save(result advertise.Result) error {
	if s.path == "" {
		return nil
	}
	result.Trace = nil

	data, err := json.Marshal(savedAddress{BootID: s.bootID, Result: result})
	if err != nil {
		return fmt.Errorf("failed to encode the last address: %w", err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("failed to save the last address to %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("failed to save the last address to %s: %w", s.path, err)
	}
	return nil
}

// sameAddresses reports whether a and b advertise the same addresses from
// the same sources.
func sameAddresses(a, b advertise.Result) bool {
	return a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6 &&
		a.IPv4Source == b.IPv4Source && a.IPv6Source == b.IPv6Source &&
		a.Origin == b.Origin && a.IPv6Origin == b.IPv6Origin
}
