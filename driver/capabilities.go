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

// DefaultAllowCaps is the default of allow_caps: the capabilities that the
// Docker engine gives a container by default, as in Nomad's docker driver.
var DefaultAllowCaps = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
	"MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
	"SETUID", "SYS_CHROOT",
}

// initCapabilities are the capabilities that the container's init needs:
// to run the job and sessions as the task's user, to give a terminal and
// work_dir to that user, and to signal the job. cap_drop does not remove
// them.
var initCapabilities = []string{"CHOWN", "KILL", "SETGID", "SETUID"}

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

// containerCapabilities checks the task's cap_add against the client's
// allow_caps and returns the engine's CapAdd and CapDrop. The init's own
// capabilities are added back when cap_drop removes them.
func containerCapabilities(capAdd, capDrop, allowCaps []string) (add, drop []string, err error) {
	allowAll := slices.Contains(allowCaps, capabilityAll)
	for _, capability := range capAdd {
		if allowAll || slices.Contains(allowCaps, capability) {
			continue
		}
		return nil, nil, fmt.Errorf("task config cap_add has %q, which this client does not allow (allow_caps: %s); add it to allow_caps in the plugin config of the client, or remove it from the task", capability, strings.Join(allowCaps, ", "))
	}

	// the engine's defaults hold the init's capabilities, so only a drop
	// of all of them needs them added back
	add = slices.Clone(capAdd)
	if slices.Contains(capDrop, capabilityAll) && !slices.Contains(add, capabilityAll) {
		for _, capability := range initCapabilities {
			if !slices.Contains(add, capability) {
				add = append(add, capability)
			}
		}
	}
	drop = slices.DeleteFunc(slices.Clone(capDrop), func(capability string) bool {
		return slices.Contains(initCapabilities, capability)
	})
	return add, drop, nil
}
