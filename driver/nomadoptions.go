package driver

// This file turns the options of the Nomad task and group that are not
// part of the driver config into container settings.

import (
	"context"
	"fmt"
	"net"
	"path"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
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

// searchDomainPattern matches a domain name: labels of letters, digits,
// "-" and "_", separated by dots, with an optional final dot.
var searchDomainPattern = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)

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
	for _, search := range cfg.DNS.Searches {
		if len(search) > 253 || !searchDomainPattern.MatchString(search) {
			return nil, fmt.Errorf("network dns search domain %q is not a domain name; list names such as \"ci.example.com\" in the searches of the group's network dns block", search)
		}
	}
	for _, option := range cfg.DNS.Options {
		if option == "" || strings.ContainsAny(option, " \t\r\n") {
			return nil, fmt.Errorf("network dns option %q is empty or has white space; list resolv.conf options such as \"ndots:2\" in the options of the group's network dns block", option)
		}
	}
	return &spec.DNS{Servers: cfg.DNS.Servers, Searches: cfg.DNS.Searches, Options: cfg.DNS.Options}, nil
}

// explainPropagation adds the fix to the engine's error for a volume
// mount whose propagation needs a shared or slave mount on the host, which
// the engine reports only when the container starts.
//
// NOTE: it matches the wording of Docker Engine 20.10's error, so another
// engine version may return the bare error.
func explainPropagation(err error, mounts []spec.Mount) error {
	message := err.Error()
	if !strings.Contains(message, "is not a shared or slave mount") && !strings.Contains(message, "is not a shared mount") {
		return err
	}
	for _, m := range mounts {
		if m.Propagation != "rprivate" && strings.Contains(message, m.HostPath) {
			return fmt.Errorf("%w; volume_mount destination %q sets propagation_mode %q, which needs the host mount that contains %s to be shared: run mount --make-rshared on that mount, or use propagation_mode = %q",
				err, m.TaskPath, nomadPropagation(m.Propagation), m.HostPath, structs.VolumeMountPropagationPrivate)
		}
	}
	return err
}

// nomadPropagation returns Nomad's name of an engine bind propagation.
func nomadPropagation(engine string) string {
	for nomad, mode := range propagation {
		if mode == engine && nomad != "" {
			return nomad
		}
	}
	return engine
}

// checkResolvedMountTargets fails when a volume_mount destination leads,
// through links in the image, to a path that spec.CheckMountTarget
// rejects. The engine follows such links when it mounts, so a destination
// that passed as written could still hide the init.
//
// NOTE: another task of the group can still replace a folder below /alloc
// with a link between this check and the container's start.
func checkResolvedMountTargets(ctx context.Context, docker *client.Client, containerID string, mounts []spec.Mount) error {
	for _, m := range mounts {
		resolved, err := resolveInContainer(ctx, docker, containerID, m.TaskPath)
		if err != nil {
			return fmt.Errorf("failed to resolve volume_mount destination %q in the container: %w; check the links on that path in the image, or choose another destination", m.TaskPath, err)
		}
		if resolved == path.Clean(m.TaskPath) {
			continue
		}
		if err := spec.CheckMountTarget(resolved); err != nil {
			return fmt.Errorf("volume_mount destination %q leads through links in the image to %s: %w", m.TaskPath, resolved, err)
		}
	}
	return nil
}

// resolveInContainer returns target with the links in the container's
// file system resolved, as far as the path exists.
func resolveInContainer(ctx context.Context, docker *client.Client, containerID, target string) (string, error) {
	parts := strings.Split(strings.Trim(path.Clean(target), "/"), "/")
	current := "/"
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := path.Join(current, part)
		stat, err := docker.ContainerStatPath(ctx, containerID, next)
		if cerrdefs.IsNotFound(err) {
			// the engine creates the rest
			return path.Join(append([]string{next}, parts[i+1:]...)...), nil
		}
		if err != nil {
			return "", err
		}
		if stat.LinkTarget == "" {
			current = next
			continue
		}
		// the engine gives the link's target fully resolved, so each step
		// takes one part of the path and the walk ends
		current = path.Join("/", stat.LinkTarget)
	}
	return current, nil
}
