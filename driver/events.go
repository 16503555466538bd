package driver

import (
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// Keys of the ready event's details, which Nomad stores with the task
// event and returns from the allocation API.
const (
	DetailSSHHost            = "ssh_host"
	DetailSSHPort            = "ssh_port"
	DetailSSHUser            = "ssh_user"
	DetailAdvertiseSource    = "advertise_source"
	DetailHostKeyFingerprint = "host_key_fingerprint"
)

// SSHCommand returns the command that a user runs to log in.
func SSHCommand(state *SSHState) string {
	return fmt.Sprintf("ssh -p %d %s@%s", state.Port, state.User, state.Host)
}

// emitReady sends the driver event whose message is the ssh command.
func (d *Driver) emitReady(cfg *drivers.TaskConfig, state *SSHState) {
	event := &drivers.TaskEvent{
		TaskID:    cfg.ID,
		TaskName:  cfg.Name,
		AllocID:   cfg.AllocID,
		Timestamp: time.Now(),
		Message:   SSHCommand(state),
		Annotations: map[string]string{
			DetailSSHHost:            state.Host,
			DetailSSHPort:            strconv.Itoa(state.Port),
			DetailSSHUser:            state.User,
			DetailAdvertiseSource:    state.AdvertiseSource,
			DetailHostKeyFingerprint: state.HostKeyFingerprint,
		},
	}
	if err := d.eventer.EmitEvent(event); err != nil {
		d.logger.Warn("failed to emit the ssh command event", "alloc_id", cfg.AllocID, "task_name", cfg.Name, "error", err)
		return
	}
	d.logger.Info("task reachable over SSH", "alloc_id", cfg.AllocID, "task_name", cfg.Name,
		"ssh_host", state.Host, "ssh_port", state.Port, "ssh_user", state.User, "advertise_source", state.AdvertiseSource)
}
