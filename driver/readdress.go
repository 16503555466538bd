package driver

// announceAddress sends a new ready event, with the new ssh command, for
// every running SSH task whose command names another address. The fingerprint
// loop calls it when the advertised address changes, for example when a
// boot script rewrites the override file or an Elastic IP moves.
func (d *Driver) announceAddress(host, source string) {
	for _, h := range d.tasks.All() {
		if !h.isRunning() {
			continue
		}
		state, changed := h.setSSHHost(host, source)
		if !changed {
			continue
		}
		h.logger.Info("the advertised address changed; reporting the new ssh command", "ssh_host", host, "advertise_source", source)
		d.emitReady(h.taskConfig, state)
	}
}

// setSSHHost records the new address of an SSH task and returns a copy of
// its SSH state, and whether it changed.
func (h *taskHandle) setSSHHost(host, source string) (*SSHState, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state.SSH == nil || h.state.SSH.Host == host {
		return nil, false
	}
	updated := *h.state.SSH
	updated.Host = host
	updated.AdvertiseSource = source
	h.state.SSH = &updated
	copied := updated
	return &copied, true
}
