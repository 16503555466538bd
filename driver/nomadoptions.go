package driver

// This file turns the options of the Nomad task and group that are not
// part of the driver config into container settings.

import (
	"fmt"
	"net"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// propagation maps Nomad's volume_mount propagation_mode to the engine's
// bind propagation, as Nomad's docker driver does.
var propagation = map[string]string{
	"":                                       "rprivate",
	structs.VolumeMountPropagationPrivate:    "rprivate",
	structs.VolumeMountPropagationHostToTask: "rslave",
	structs.VolumeMountPropagationBidirectional: "rshared",
}

// taskMounts returns the bind mounts of the task's volume_mount blocks.
func taskMounts(cfg *drivers.TaskConfig) ([]spec.Mount, error) {
	var mounts []spec.Mount
	for _, m := range cfg.Mounts {
		if m == nil {
			continue
		}
		if err := spec.CheckMountTarget(m.TaskPath); err != nil {
			return nil, err
		}
		mode, ok := propagation[m.PropagationMode]
		if !ok {
			return nil, fmt.Errorf("volume_mount destination %q has propagation_mode = %q, which the driver does not know; use %q, %q or %q",
				m.TaskPath, m.PropagationMode, structs.VolumeMountPropagationPrivate, structs.VolumeMountPropagationHostToTask, structs.VolumeMountPropagationBidirectional)
		}
		mounts = append(mounts, spec.Mount{HostPath: m.HostPath, TaskPath: m.TaskPath, ReadOnly: m.Readonly, Propagation: mode})
	}
	return mounts, nil
}

// taskDevices returns the host devices that Nomad's device plugins gave
// the task.
func taskDevices(cfg *drivers.TaskConfig) []spec.Device {
	var devices []spec.Device
	for _, d := range cfg.Devices {
		if d == nil {
			continue
		}
		devices = append(devices, spec.Device{HostPath: d.HostPath, TaskPath: d.TaskPath, Permissions: d.Permissions})
	}
	return devices
}

// taskDNS returns the dns block of the group's network, which Nomad passes
// to the driver in every network mode.
func taskDNS(cfg *drivers.TaskConfig) (*spec.DNS, error) {
	if cfg.DNS == nil {
		return nil, nil
	}
	for _, server := range cfg.DNS.Servers {
		if net.ParseIP(server) == nil {
			return nil, fmt.Errorf("network dns server %q is not an IP address; list IP addresses in the servers of the group's network dns block", server)
		}
	}
	return &spec.DNS{Servers: cfg.DNS.Servers, Searches: cfg.DNS.Searches, Options: cfg.DNS.Options}, nil
}
