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
	DetailHostKey            = "host_key"
)

// SSHCommand returns the command that a user runs to log in.
func SSHCommand(state *SSHState) string {
	return fmt.Sprintf("ssh -p %d %s@%s", state.Port, state.User, state.Host)
}

// emitEvent sends a driver event for the task and reports whether it was
// sent.
func (d *Driver) emitEvent(cfg *drivers.TaskConfig, message string, details map[string]string) bool {
	event := &drivers.TaskEvent{
		TaskID:      cfg.ID,
		TaskName:    cfg.Name,
		AllocID:     cfg.AllocID,
		Timestamp:   time.Now(),
		Message:     message,
		Annotations: details,
	}
	if err := d.eventer.EmitEvent(event); err != nil {
		d.logger.Warn("failed to emit a task event", "alloc_id", cfg.AllocID, "task_name", cfg.Name, "message", message, "error", err)
		return false
	}
	return true
}

// taskEmitter returns a function that sends driver events for the task.
func (d *Driver) taskEmitter(cfg *drivers.TaskConfig) func(string, map[string]string) {
	return func(message string, details map[string]string) {
		d.emitEvent(cfg, message, details)
	}
}

// emitReady sends the driver event whose message is the ssh command.
func (d *Driver) emitReady(cfg *drivers.TaskConfig, state *SSHState) {
	details := map[string]string{
		DetailSSHHost:            state.Host,
		DetailSSHPort:            strconv.Itoa(state.Port),
		DetailSSHUser:            state.User,
		DetailAdvertiseSource:    state.AdvertiseSource,
		DetailHostKeyFingerprint: state.HostKeyFingerprint,
		DetailHostKey:            state.HostPublicKey,
	}
	// the fingerprint follows as a shell comment, so that the message
	// stays a command that can be pasted
	message := SSHCommand(state) + "  # host key " + state.HostKeyFingerprint
	if !d.emitEvent(cfg, message, details) {
		return
	}
	d.logger.Info("task reachable over SSH", "alloc_id", cfg.AllocID, "task_name", cfg.Name,
		"ssh_host", state.Host, "ssh_port", state.Port, "ssh_user", state.User, "advertise_source", state.AdvertiseSource)
}
