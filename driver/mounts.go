package driver

import (
	"fmt"

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
