package driver

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// settings is the plugin config after validation, in the types the driver
// works with.
type settings struct {
	dockerEndpoint      string
	allowPrivileged     bool
	dataDir             string
	pullActivityTimeout time.Duration
	authConfig          string
	allowCaps           []string
	family              advertise.Family
	advertise           advertise.Config
	refreshInterval     time.Duration
}

// validatePluginConfig checks every option of the plugin block and returns
// an error that names the option, the value and the fix.
func validatePluginConfig(cfg *PluginConfig) (*settings, error) {
	endpoint := cfg.DockerEndpoint
	if endpoint == "" {
		endpoint = DefaultDockerEndpoint
	}
	if err := validateDockerEndpoint(endpoint); err != nil {
		return nil, err
	}

	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	if !filepath.IsAbs(dataDir) {
		return nil, fmt.Errorf("plugin config data_dir = %q is not an absolute path; give the full path of a directory that only the Nomad client's user can write, for example %q", cfg.DataDir, DefaultDataDir)
	}

	if cfg.AuthConfig != "" && !filepath.IsAbs(cfg.AuthConfig) {
		return nil, fmt.Errorf("plugin config auth_config = %q is not an absolute path; give the full path of a Docker config.json, for example \"/etc/nomad-driver-sshrerun/docker-config.json\"", cfg.AuthConfig)
	}

	allowCaps := DefaultAllowCaps
	if cfg.AllowCaps != nil {
		var err error
		if allowCaps, err = normalizeCapabilities("plugin config allow_caps", cfg.AllowCaps); err != nil {
			return nil, err
		}
	}

	pullTimeout, err := parsePositiveDuration("pull_activity_timeout", cfg.PullActivityTimeout, DefaultPullActivityTimeout)
	if err != nil {
		return nil, err
	}

	applyAdvertiseDefaults(cfg)
	adv := cfg.Advertise
	timeout, err := parsePositiveDuration("advertise.imds_timeout", adv.IMDSTimeout, advertise.DefaultIMDSTimeout)
	if err != nil {
		return nil, err
	}
	refresh, err := parsePositiveDuration("advertise.refresh_interval", adv.RefreshInterval, DefaultRefreshInterval)
	if err != nil {
		return nil, err
	}
	if refresh < time.Second {
		return nil, fmt.Errorf("plugin config advertise.refresh_interval = %q is shorter than 1s; set it to 1s or more", adv.RefreshInterval)
	}

	overrideFile := adv.OverrideFile
	if overrideFile == "" {
		overrideFile = advertise.DefaultOverrideFile
	}
	if !strings.HasPrefix(overrideFile, "/") {
		return nil, fmt.Errorf("plugin config advertise.override_file = %q is not an absolute path; give the full path, for example %q", overrideFile, advertise.DefaultOverrideFile)
	}

	family := advertise.Family(adv.Family)
	switch family {
	case "":
		family = advertise.FamilyIPv4
	case advertise.FamilyIPv4, advertise.FamilyIPv6:
	default:
		return nil, fmt.Errorf("plugin config advertise.family = %q is not an address family; use \"ipv4\" or \"ipv6\"", adv.Family)
	}

	return &settings{
		family:              family,
		dockerEndpoint:      endpoint,
		allowPrivileged:     cfg.AllowPrivileged,
		dataDir:             filepath.Clean(dataDir),
		pullActivityTimeout: pullTimeout,
		authConfig:          cfg.AuthConfig,
		allowCaps:           allowCaps,
		advertise: advertise.Config{
			OverrideFile:      overrideFile,
			IMDSEndpoint:      adv.IMDSEndpoint,
			IMDSTimeout:       timeout,
			LocalIPv4Fallback: adv.LocalIPv4Fallback,
			Clouds:            adv.Clouds,
			GCEEndpoint:       adv.GCEEndpoint,
			AzureEndpoint:     adv.AzureEndpoint,
		},
		refreshInterval: refresh,
	}, nil
}

func validateDockerEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("plugin config docker_endpoint = %q is not a URL: %w; use for example %q", endpoint, err, DefaultDockerEndpoint)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return fmt.Errorf("plugin config docker_endpoint = %q has no socket path; use for example %q", endpoint, DefaultDockerEndpoint)
		}
	case "tcp", "http":
		if u.Host == "" {
			return fmt.Errorf("plugin config docker_endpoint = %q has no host; use for example \"tcp://127.0.0.1:2375\"", endpoint)
		}
	default:
		// the driver bind-mounts host paths, so the engine must run on this
		// host, and a local engine needs no TLS
		return fmt.Errorf("plugin config docker_endpoint = %q has the scheme %q; use unix://, or tcp:// or http:// for an engine on this host", endpoint, u.Scheme)
	}
	return nil
}

func parsePositiveDuration(option, value string, fallback time.Duration) (time.Duration, error) {
	if value == "" {
		return fallback, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		return 0, fmt.Errorf("plugin config %s = %q is not a duration; use a number with a unit, for example \"5s\"", option, value)
	}
	if d <= 0 {
		return 0, fmt.Errorf("plugin config %s = %q must be greater than zero", option, value)
	}
	return d, nil
}

// loginNamePattern is the POSIX portable user name character set, which
// OpenSSH clients accept without quoting.
var loginNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)

// validateTaskConfig checks the task config fields that need no
// allocation. validateSSHPort checks the port label once the ports are known.
func validateTaskConfig(cfg *TaskConfig) error {
	if strings.TrimSpace(cfg.Image) == "" {
		return fmt.Errorf("task config image is missing; set image to a local image, for example \"busybox:latest\"")
	}
	if strings.TrimSpace(cfg.Image) != cfg.Image {
		return fmt.Errorf("task config image = %q has leading or trailing spaces; remove them", cfg.Image)
	}

	for key := range cfg.Env {
		if key == "" || strings.ContainsAny(key, "=\x00") {
			return fmt.Errorf("task config env has the invalid name %q; names must be non-empty and contain no \"=\"", key)
		}
	}
	if cfg.Auth != nil && (cfg.Auth.Username == "" || cfg.Auth.Password == "") {
		return fmt.Errorf("task config auth needs both username and password; set them, or remove the auth block for a registry without authentication")
	}

	if cfg.WorkDir != "" {
		if !path.IsAbs(cfg.WorkDir) {
			return fmt.Errorf("task config work_dir = %q is not an absolute path; give the full path inside the container, for example \"/home/circleci/project\"", cfg.WorkDir)
		}
		if strings.ContainsRune(cfg.WorkDir, 0) {
			return fmt.Errorf("task config work_dir = %q contains a NUL character; remove it", cfg.WorkDir)
		}
		cfg.WorkDir = path.Clean(cfg.WorkDir)
		if cfg.WorkDir == spec.InitDir || strings.HasPrefix(cfg.WorkDir, spec.InitDir+"/") {
			return fmt.Errorf("task config work_dir = %q is inside %s, which contains the driver's init; choose another directory, for example \"/home/circleci/project\"", cfg.WorkDir, spec.InitDir)
		}
	}

	if _, err := shmSizeBytes(cfg.ShmSize); err != nil {
		return err
	}
	if _, err := taskUlimits(cfg.Ulimit); err != nil {
		return err
	}
	var err error
	if cfg.CapAdd, err = normalizeCapabilities("task config cap_add", cfg.CapAdd); err != nil {
		return err
	}
	if cfg.CapDrop, err = normalizeCapabilities("task config cap_drop", cfg.CapDrop); err != nil {
		return err
	}

	for key := range cfg.Labels {
		if key == "" {
			return fmt.Errorf("task config labels has an empty label name; remove it or give it a name")
		}
		if strings.HasPrefix(key, spec.LabelPrefix) {
			return fmt.Errorf("task config labels has %q, whose prefix %q the driver reserves; rename the label", key, spec.LabelPrefix)
		}
	}

	if cfg.SSH == nil {
		return nil
	}
	ssh := cfg.SSH
	if strings.TrimSpace(ssh.Port) == "" {
		return fmt.Errorf("task config ssh.port is missing; set it to a port label declared in the group's network block, for example \"ssh\"")
	}
	if ssh.User == "" {
		ssh.User = DefaultSSHUser
	}
	if !loginNamePattern.MatchString(ssh.User) {
		return fmt.Errorf("task config ssh.user = %q is not a valid login name; use letters, digits, \"_\", \".\" and \"-\", starting with a letter or \"_\", at most 32 characters", ssh.User)
	}
	for _, option := range []struct {
		name, value string
	}{{"wait_for_connection", ssh.WaitForConnection}, {"max_session", ssh.MaxSession}} {
		if option.value == "" {
			continue
		}
		d, err := time.ParseDuration(option.value)
		if err != nil || d < 0 {
			return fmt.Errorf("task config ssh.%s = %q is not a duration of zero or more; use a number with a unit, for example \"10m\"", option.name, option.value)
		}
	}
	if ssh.MaxSession != "" {
		if d, _ := time.ParseDuration(ssh.MaxSession); d == 0 {
			return fmt.Errorf("task config ssh.max_session = %q would close every session at once; set a duration such as \"2h\"", ssh.MaxSession)
		}
	}
	if len(ssh.AuthorizedKeys) == 0 {
		return fmt.Errorf("task config ssh.authorized_keys is empty; add the OpenSSH public key of each user who may log in")
	}
	if _, err := sshserver.ParseAuthorizedKeys(ssh.AuthorizedKeys); err != nil {
		return fmt.Errorf("task config ssh.%w", err)
	}
	return nil
}

// sshPort returns the allocated port for the ssh block's port label.
// containerPort gives the port that the SSH server listens on.
func sshPort(cfg *drivers.TaskConfig, label string) (structs.AllocatedPortMapping, error) {
	ports := allocatedPorts(cfg)
	port, ok := ports.Get(label)
	if !ok {
		return port, fmt.Errorf("task config ssh.port = %q is not a port label of this task (labels: [%s]); declare it in the group's network block, for example network { port %q {} }",
			label, portLabels(ports), label)
	}
	if port.To < -1 {
		return port, fmt.Errorf("port label %q has to = %d; set to to a port number, to -1 for the host port, or leave it unset for %d", label, port.To, sshserver.DefaultPort)
	}
	return port, nil
}

// containerPort returns the SSH server's port inside the container: the
// label's to, the host port when to is -1 (Nomad's "same as the host port"),
// or sshserver.DefaultPort when to is unset.
func containerPort(port structs.AllocatedPortMapping) int {
	switch {
	case port.To > 0:
		return port.To
	case port.To == -1:
		return port.Value
	default:
		return sshserver.DefaultPort
	}
}

// taskPorts resolves the task's ports option to bindings. Each entry must
// be a port label of the task, other than the ssh block's, and appear once.
// As in Nomad's docker driver, a label without "to" maps to the same port
// number inside the container.
func taskPorts(cfg *drivers.TaskConfig, taskConfig *TaskConfig) ([]spec.Port, error) {
	allocated := allocatedPorts(cfg)
	seen := map[string]bool{}
	var ports []spec.Port
	for _, label := range taskConfig.Ports {
		switch {
		case strings.TrimSpace(label) == "":
			return nil, fmt.Errorf("task config ports has an empty label; remove it or name a port label of the group's network block")
		case seen[label]:
			return nil, fmt.Errorf("task config ports lists %q twice; list each port label once", label)
		case taskConfig.SSH != nil && label == taskConfig.SSH.Port:
			return nil, fmt.Errorf("task config ports lists %q, the port label of the ssh block, which the driver publishes already; remove it from ports", label)
		}
		seen[label] = true

		port, ok := allocated.Get(label)
		if !ok {
			return nil, fmt.Errorf("task config ports lists %q, which is not a port label of this task (labels: [%s]); declare it in the group's network block, for example network { port %q {} }",
				label, portLabels(allocated), label)
		}
		containerPort := port.Value
		switch {
		case port.To > 0:
			containerPort = port.To
		case port.To < -1:
			return nil, fmt.Errorf("port label %q has to = %d; set to to a port number, to -1 for the host port, or leave it unset for the host port", label, port.To)
		}
		ports = append(ports, spec.Port{Label: label, HostIP: port.HostIP, HostPort: port.Value, ContainerPort: containerPort})
	}
	return ports, nil
}

// allocatedPorts returns the ports that Nomad allocated to the task.
func allocatedPorts(cfg *drivers.TaskConfig) structs.AllocatedPorts {
	if cfg.Resources == nil || cfg.Resources.Ports == nil {
		return nil
	}
	return *cfg.Resources.Ports
}

// portLabels returns the labels of ports, separated by commas.
func portLabels(ports structs.AllocatedPorts) string {
	labels := make([]string, 0, len(ports))
	for _, port := range ports {
		labels = append(labels, port.Label)
	}
	return strings.Join(labels, ", ")
}

// shmSizeBytes returns the size of /dev/shm in bytes from shm_size, or 0
// for the engine's default, which is 64 MiB unless the engine's
// default-shm-size sets another.
func shmSizeBytes(value string) (int64, error) {
	if value == "" {
		return 0, nil
	}
	const minimum = 1 << 20
	size, err := units.RAMInBytes(value)
	switch {
	case err != nil:
		return 0, fmt.Errorf("task config shm_size = %q is not a size; use a number with a unit, for example \"1g\" or \"512m\"", value)
	case size < 0:
		// the parser wraps around on overflow
		return 0, fmt.Errorf("task config shm_size = %q is too large; use a size such as \"1g\"", value)
	case size < minimum:
		return 0, fmt.Errorf("task config shm_size = %q is %d bytes, less than 1 MiB; add a unit, for example \"512m\"", value, size)
	}
	return size, nil
}

// taskUlimits returns the engine's ulimits for the task's ulimit option, a
// map from a limit's name, such as "nofile", to "soft:hard" or one value
// for both, sorted by name.
func taskUlimits(limits map[string]string) ([]*units.Ulimit, error) {
	names := slices.Sorted(maps.Keys(limits))
	ulimits := make([]*units.Ulimit, 0, len(names))
	for _, name := range names {
		value := limits[name]
		ulimit, err := units.ParseUlimit(name + "=" + value)
		if err == nil && (ulimit.Soft < -1 || ulimit.Hard < -1) {
			err = errors.New("a limit is a number of zero or more, or -1 for unlimited")
		}
		if err != nil {
			return nil, fmt.Errorf("task config ulimit %s = %q is invalid: %w; use a limit such as nofile, nproc or memlock, with \"soft:hard\" or one number, for example nofile = \"65536:65536\"", name, value, err)
		}
		ulimits = append(ulimits, ulimit)
	}
	return ulimits, nil
}
