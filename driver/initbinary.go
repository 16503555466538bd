package driver

import (
	"fmt"
	"os"
	"strconv"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/initbin"
)

// installInit installs the init that the plugin carries into dataDir and
// makes it the init of new containers. A plugin without one keeps its own
// executable as the init.
func (d *Driver) installInit(dataDir string) error {
	if d.embeddedInit == nil {
		d.logger.Info("containers run the plugin's own executable as their init", "init_binary", d.initBinary)
		return nil
	}
	path, err := initbin.Install(dataDir, d.embeddedInit)
	if err != nil {
		return fmt.Errorf("plugin config data_dir: %w", err)
	}

	d.mu.Lock()
	d.initBinary = path
	d.mu.Unlock()
	d.logger.Info("installed the container init", "init_binary", path, "size_bytes", strconv.Itoa(len(d.embeddedInit)))
	return nil
}

// currentInit returns the host path of the init that new containers mount.
// When the installed file has gone, for example because a cleanup emptied
// data_dir, it is installed again.
func (d *Driver) currentInit(dataDir string) (string, error) {
	d.mu.RLock()
	path := d.initBinary
	d.mu.RUnlock()
	if path == "" {
		return "", fmt.Errorf("the plugin could not find its own executable, which containers run as their init; check the agent log at start")
	}
	if d.embeddedInit == nil {
		return path, nil
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}

	d.logger.Warn("the installed container init is missing; installing it again", "init_binary", path)
	if err := d.installInit(dataDir); err != nil {
		return "", err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.initBinary, nil
}
