package driver

import (
	"fmt"
	"slices"
	"strings"
)

// knownCapabilities are the Linux capabilities by name, without the CAP_
// prefix, as capabilities(7) lists them.
var knownCapabilities = []string{
	"AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF",
	"CHECKPOINT_RESTORE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH",
	"FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
	"LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
	"NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP",
	"SETGID", "SETPCAP", "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT",
	"SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE",
	"SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "WAKE_ALARM",
}

// DefaultAllowCaps is the default of allow_caps, the same as in Nomad's
// docker driver: the engine's default capabilities without NET_RAW, which
// Nomad leaves out for security.
var DefaultAllowCaps = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
	"MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
	"SYS_CHROOT",
}

// engineDefaultCaps are the capabilities that the engine gives a container
// without cap_add and cap_drop.
var engineDefaultCaps = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
	"MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
	"SETUID", "SYS_CHROOT",
}

// initCapabilities are the capabilities that the container's init needs.
// SETUID and SETGID run the job and the sessions as the task's user. CHOWN
// gives a terminal and work_dir to that user, DAC_OVERRIDE creates work_dir
// in a folder of that user, and KILL signals the job. Neither cap_drop nor
// allow_caps removes them.
var initCapabilities = []string{"CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETUID"}

// capabilityAll stands for every capability in cap_add, cap_drop and
// allow_caps.
const capabilityAll = "ALL"

// normalizeCapability returns name in upper case without the CAP_ prefix,
// or an error that names option and the value.
func normalizeCapability(option, name string) (string, error) {
	normalized := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "CAP_")
	if normalized == capabilityAll || slices.Contains(knownCapabilities, normalized) {
		return normalized, nil
	}
	return "", fmt.Errorf("%s has %q, which is not a Linux capability; use a name from capabilities(7) such as \"SYS_PTRACE\", or \"ALL\"", option, name)
}

// normalizeCapabilities normalizes every name of a list option.
func normalizeCapabilities(option string, names []string) ([]string, error) {
	normalized := make([]string, 0, len(names))
	for _, name := range names {
		capability, err := normalizeCapability(option, name)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(normalized, capability) {
			normalized = append(normalized, capability)
		}
	}
	return normalized, nil
}

// capabilityChange is the result of containerCapabilities.
type capabilityChange struct {
	// Add and Drop are the engine's CapAdd and CapDrop.
	Add, Drop []string
	// KeptForInit are the init's capabilities that the task's cap_drop
	// would have removed.
	KeptForInit []string
}

// containerCapabilities checks the task's cap_add against the client's
// allow_caps and returns the engine's CapAdd and CapDrop. As in Nomad's
// docker driver, the engine's defaults that allow_caps leaves out are
// dropped too. The init's own capabilities stay in every case.
func containerCapabilities(capAdd, capDrop, allowCaps []string) (capabilityChange, error) {
	allowed := func(capability string) bool {
		return slices.Contains(allowCaps, capabilityAll) || slices.Contains(allowCaps, capability)
	}
	for _, capability := range capAdd {
		ok := allowed(capability)
		if capability == capabilityAll {
			// "ALL" needs every capability allowed, by name or as "ALL"
			ok = !slices.ContainsFunc(knownCapabilities, func(c string) bool { return !allowed(c) })
		}
		if ok {
			continue
		}
		list := strings.Join(allowCaps, ", ")
		if list == "" {
			list = "none"
		}
		return capabilityChange{}, fmt.Errorf("task config cap_add has %q, which this client does not allow (allow_caps: %s); add it to allow_caps in the plugin config of the client, or remove it from the task", capability, list)
	}

	change := capabilityChange{Add: slices.Clone(capAdd)}
	forInit := func(capability string) bool { return slices.Contains(initCapabilities, capability) }

	// the task's drops, and the engine's defaults that allow_caps leaves out
	for _, capability := range capDrop {
		if !forInit(capability) {
			change.Drop = append(change.Drop, capability)
		}
	}
	dropsAll := slices.Contains(capDrop, capabilityAll)
	if !dropsAll {
		for _, capability := range engineDefaultCaps {
			if !allowed(capability) && !forInit(capability) && !slices.Contains(change.Drop, capability) {
				change.Drop = append(change.Drop, capability)
			}
		}
	}

	// the init's capabilities that the task drops come back, unless
	// cap_add already names them
	addsAll := slices.Contains(capAdd, capabilityAll)
	for _, capability := range initCapabilities {
		dropped := dropsAll || slices.Contains(capDrop, capability)
		if !dropped || addsAll || slices.Contains(capAdd, capability) {
			continue
		}
		change.KeptForInit = append(change.KeptForInit, capability)
		if dropsAll {
			change.Add = append(change.Add, capability)
		}
	}
	return change, nil
}
