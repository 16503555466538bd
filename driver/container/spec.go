// Package container turns a decoded task into the Docker Engine API's
// container create request. It does no I/O, so every rule about names,
// labels, mounts, ports and the job's argv is testable without an engine.
package container

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// Labels that the driver puts on every container it creates. Operators and
// tests select the project's containers with LabelManaged.
const (
	LabelManaged  = "nomad-driver-sshrerun.managed"
	LabelAllocID  = "nomad-driver-sshrerun.alloc_id"
	LabelTaskName = "nomad-driver-sshrerun.task_name"
	LabelJobName  = "nomad-driver-sshrerun.job_name"
	LabelJobID    = "nomad-driver-sshrerun.job_id"

	// LabelAllocRoot is the alloc directory of the Nomad client that created
	// the container. Several clients can share one engine, and each one's
	// driver reconciles only the containers under its own alloc directory.
	LabelAllocRoot = "nomad-driver-sshrerun.alloc_root"

	// LabelPrefix is reserved: task labels may not use it.
	LabelPrefix = "nomad-driver-sshrerun."
)

// Paths inside the container. The plugin binary is mounted read-only and
// runs as every container's init.
const (
	InitDir        = "/.sshrerun"
	InitBinaryPath = InitDir + "/nomad-driver-sshrerun"
	InitConfigPath = InitDir + "/config.json"
	EventsDir      = InitDir + "/events"
	InitSubcommand = sshserver.Subcommand
)

// Paths where Nomad's task directories are mounted, the same as Nomad's
// docker driver mounts them.
const (
	AllocMountPath   = "/alloc"
	LocalMountPath   = "/local"
	SecretsMountPath = "/secrets"
)

// Identity names the Nomad task that a container belongs to.
type Identity struct {
	AllocID  string
	TaskName string
	JobName  string
	JobID    string

	// AllocRoot is the client's alloc directory, the parent of every alloc
	// dir on that client. When it is empty, LabelAllocRoot is left off.
	AllocRoot string
}

// Image holds the defaults that an image sets and a task may override.
type Image struct {
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	Env        []string
}

// Task holds the task config fields that shape the job's process.
type Task struct {
	Image      string
	Entrypoint []string
	Command    string
	Args       []string
	Env        map[string]string
	Labels     map[string]string
	User       string
	Privileged bool

	// WorkDir is the job's working directory, or "" for the image's.
	WorkDir string

	// ShmSize is the size of /dev/shm in bytes, or 0 for Docker's default.
	ShmSize int64

	// CapAdd and CapDrop change the engine's default capabilities.
	CapAdd  []string
	CapDrop []string

	// Ulimits are the container's resource limits, such as nofile.
	Ulimits []*container.Ulimit
}

// Resources are the task's CPU and memory settings from Nomad.
type Resources struct {
	CPUShares int64
	// MemoryMB is the reservation, and the limit when MemoryMaxMB is 0.
	MemoryMB    int64
	MemoryMaxMB int64

	// CPUSet lists the CPU cores that the task reserved with
	// resources.cores, such as "0,2", to which the container is pinned;
	// empty for none.
	CPUSet string
}

// Dirs are the host paths of Nomad's task directories.
type Dirs struct {
	Alloc   string
	Local   string
	Secrets string
}

// Init names the host files of the container's init: the plugin's static
// binary and the init's config. Both are mounted read-only.
type Init struct {
	Binary string
	Config string

	// Events is a host directory, mounted read-write at EventsDir, where
	// the init writes its SSH events; empty for a task without SSH.
	Events string
}

// SSH is the binding from a host port to the in-container SSH server.
type SSH struct {
	// Label is the port label of the ssh block, for error messages.
	Label         string
	HostIP        string
	HostPort      int
	ContainerPort int
}

// Port is the binding of a port label of the task's ports option, from a
// host port to a port of the job inside the container.
type Port struct {
	Label         string
	HostIP        string
	HostPort      int
	ContainerPort int
}

// Mount is a bind mount that Nomad gives the task, from a volume_mount
// block of a host or CSI volume.
type Mount struct {
	HostPath string
	TaskPath string
	ReadOnly bool
	// Propagation is the engine's bind propagation, such as "rprivate".
	Propagation string
}

// Device is a host device that a Nomad device plugin gives the task.
type Device struct {
	HostPath    string
	TaskPath    string
	Permissions string
}

// Spec is everything needed to build a create request.
type Spec struct {
	Identity  Identity
	Task      Task
	Image     Image
	Dirs      Dirs
	Resources Resources
	Init      Init

	// SSH is nil for a task without an ssh block.
	SSH *SSH

	// Ports are the task's other published ports.
	Ports []Port

	// Mounts and Devices come from Nomad's volume_mount blocks and device
	// plugins.
	Mounts  []Mount
	Devices []Device

	// DNS is the dns block of the group's network, or nil for Docker's
	// default resolv.conf.
	DNS *DNS
}

// DNS is the resolver config of the container's /etc/resolv.conf.
type DNS struct {
	Servers  []string
	Searches []string
	Options  []string
}

// Request is the body of a container create call.
type Request struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
}

// Build returns the create request for spec. The container's entrypoint is
// the init, which starts the job's argv (JobArgv) from its config, so the
// image's own entrypoint and command are replaced.
func Build(spec Spec) (*Request, error) {
	if len(JobArgv(spec.Task, spec.Image)) == 0 {
		return nil, fmt.Errorf("image %q sets no ENTRYPOINT or CMD and the task sets no command; set command in the task config", spec.Task.Image)
	}
	if spec.Init.Binary == "" || spec.Init.Config == "" {
		return nil, fmt.Errorf("the init binary and config paths must be set")
	}

	labels, err := Labels(spec.Identity, spec.Task.Labels)
	if err != nil {
		return nil, err
	}

	cfg := &container.Config{
		Image:      spec.Task.Image,
		Env:        envList(spec.Task.Env),
		Labels:     labels,
		User:       spec.Task.User,
		Entrypoint: []string{InitBinaryPath, InitSubcommand, "-config", InitConfigPath},
	}
	host := &container.HostConfig{
		Binds: append(taskDirBinds(spec.Dirs),
			spec.Init.Binary+":"+InitBinaryPath+":ro",
			spec.Init.Config+":"+InitConfigPath+":ro",
		),
		Resources:  resources(spec.Resources),
		Privileged: spec.Task.Privileged,
		ShmSize:    spec.Task.ShmSize,
		CapAdd:     spec.Task.CapAdd,
		CapDrop:    spec.Task.CapDrop,
		// the driver streams the logs into Nomad's log files from this copy;
		// Nomad rotates its own files, so the engine keeps only a little
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "2"}},
	}

	if spec.Init.Events != "" {
		host.Binds = append(host.Binds, spec.Init.Events+":"+EventsDir)
	}
	if spec.SSH != nil {
		if err := addSSH(cfg, host, spec.SSH); err != nil {
			return nil, err
		}
	}
	for _, port := range spec.Ports {
		if err := addPort(cfg, host, port, spec.SSH); err != nil {
			return nil, err
		}
	}
	for _, m := range spec.Mounts {
		if err := CheckMountTarget(m.TaskPath); err != nil {
			return nil, err
		}
		host.Mounts = append(host.Mounts, mount.Mount{
			Type:        mount.TypeBind,
			Source:      m.HostPath,
			Target:      m.TaskPath,
			ReadOnly:    m.ReadOnly,
			BindOptions: &mount.BindOptions{Propagation: mount.Propagation(m.Propagation)},
		})
	}
	host.Ulimits = spec.Task.Ulimits
	if spec.DNS != nil {
		host.DNS = spec.DNS.Servers
		host.DNSSearch = spec.DNS.Searches
		host.DNSOptions = spec.DNS.Options
	}
	for _, device := range spec.Devices {
		host.Devices = append(host.Devices, container.DeviceMapping{
			PathOnHost:        device.HostPath,
			PathInContainer:   device.TaskPath,
			CgroupPermissions: device.Permissions,
		})
	}
	return &Request{Name: Name(spec.Identity), Config: cfg, HostConfig: host}, nil
}

// CheckMountTarget fails for a volume_mount destination that is not an
// absolute path, or that would hide the init or one of Nomad's task
// directories.
func CheckMountTarget(target string) error {
	if !path.IsAbs(target) {
		return fmt.Errorf("volume_mount destination %q is not an absolute path; set destination to a full path inside the container, such as \"/data\"", target)
	}
	clean := path.Clean(target)
	if clean == "/" || clean == InitDir || strings.HasPrefix(clean, InitDir+"/") {
		return fmt.Errorf("volume_mount destination %q would hide the driver's init at %s; choose another destination, such as \"/data\"", target, InitDir)
	}
	for _, dir := range []string{AllocMountPath, LocalMountPath, SecretsMountPath} {
		if clean == dir {
			return fmt.Errorf("volume_mount destination %q is where Nomad's %s directory is mounted; choose another destination, or a path below %s", target, strings.TrimPrefix(dir, "/"), dir)
		}
	}
	return nil
}

// resources returns the engine's limits: CPU shares, and memory with Nomad's
// semantics, where memory is the reservation and memory_max, when set, the
// hard limit.
func resources(r Resources) container.Resources {
	const mib = 1024 * 1024
	res := container.Resources{CPUShares: r.CPUShares, CpusetCpus: r.CPUSet}
	switch {
	case r.MemoryMaxMB > 0:
		res.Memory = r.MemoryMaxMB * mib
		res.MemoryReservation = r.MemoryMB * mib
	case r.MemoryMB > 0:
		res.Memory = r.MemoryMB * mib
	}
	// no swap beyond the memory limit, as in Nomad's docker driver
	if res.Memory > 0 {
		res.MemorySwap = res.Memory
	}
	return res
}

func addSSH(cfg *container.Config, host *container.HostConfig, ssh *SSH) error {
	if ssh.HostPort < 1 || ssh.HostPort > 65535 {
		return fmt.Errorf("ssh host port %d is out of range 1-65535", ssh.HostPort)
	}
	if ssh.ContainerPort < 1 || ssh.ContainerPort > 65535 {
		return fmt.Errorf("ssh container port %d is out of range 1-65535; set the port label's \"to\" to a valid port", ssh.ContainerPort)
	}

	bind(cfg, host, PortKey(ssh.ContainerPort), ssh.HostIP, ssh.HostPort)
	return nil
}

// addPort publishes a port of the task's ports option for TCP and UDP, as
// Nomad's docker driver does. Labels may share a container port, but none
// may take the SSH server's.
func addPort(cfg *container.Config, host *container.HostConfig, port Port, ssh *SSH) error {
	if port.HostPort < 1 || port.HostPort > 65535 {
		return fmt.Errorf("port %q: host port %d is out of range 1-65535", port.Label, port.HostPort)
	}
	if port.ContainerPort < 1 || port.ContainerPort > 65535 {
		return fmt.Errorf("port %q: container port %d is out of range 1-65535; set the port label's \"to\" to a valid port", port.Label, port.ContainerPort)
	}
	if ssh != nil && port.ContainerPort == ssh.ContainerPort {
		return fmt.Errorf("port %q maps to the container port %d, where the SSH server of ssh.port = %q listens; give the label another \"to\" in the group's network block", port.Label, port.ContainerPort, ssh.Label)
	}
	bind(cfg, host, PortKey(port.ContainerPort), port.HostIP, port.HostPort)
	bind(cfg, host, udpPortKey(port.ContainerPort), port.HostIP, port.HostPort)
	return nil
}

// bind exposes key and publishes it on hostIP:hostPort, next to the
// bindings that key has already.
func bind(cfg *container.Config, host *container.HostConfig, key nat.Port, hostIP string, hostPort int) {
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = nat.PortSet{}
	}
	if host.PortBindings == nil {
		host.PortBindings = nat.PortMap{}
	}
	cfg.ExposedPorts[key] = struct{}{}
	host.PortBindings[key] = append(host.PortBindings[key], nat.PortBinding{HostIP: hostIP, HostPort: strconv.Itoa(hostPort)})
}

// WorkingDir returns the job's working directory: the task's work_dir,
// or else the image's WORKDIR, or "" when neither sets one.
func WorkingDir(task Task, image Image) string {
	if task.WorkDir != "" {
		return task.WorkDir
	}
	return image.WorkingDir
}

// JobArgv returns the job's argv with Docker's rules: the task's entrypoint
// replaces the image's and then drops the image's CMD, and the task's
// command (followed by args) replaces the image's CMD. Args without a
// command replace the image's CMD, as in Nomad's docker driver.
func JobArgv(task Task, image Image) []string {
	entrypoint := image.Entrypoint
	cmd := image.Cmd
	if len(task.Entrypoint) > 0 {
		entrypoint = task.Entrypoint
		cmd = nil
	}

	switch {
	case task.Command != "":
		cmd = append([]string{task.Command}, task.Args...)
	case len(task.Args) > 0:
		cmd = task.Args
	}

	argv := make([]string, 0, len(entrypoint)+len(cmd))
	argv = append(argv, entrypoint...)
	return append(argv, cmd...)
}

// Labels returns the container labels: the task's own, then the driver's.
// A task label under the driver's prefix is an error, because the driver
// finds its containers by those labels.
func Labels(id Identity, taskLabels map[string]string) (map[string]string, error) {
	labels := make(map[string]string, len(taskLabels)+6)
	for key, value := range taskLabels {
		if strings.HasPrefix(key, LabelPrefix) {
			return nil, fmt.Errorf("label %q uses the prefix %q, which the driver reserves; rename the label", key, LabelPrefix)
		}
		labels[key] = value
	}

	labels[LabelManaged] = "true"
	labels[LabelAllocID] = id.AllocID
	labels[LabelTaskName] = id.TaskName
	labels[LabelJobName] = id.JobName
	labels[LabelJobID] = id.JobID
	if id.AllocRoot != "" {
		labels[LabelAllocRoot] = id.AllocRoot
	}
	return labels, nil
}

var invalidNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)

// Name returns "<task>-<alloc id>", with characters that Docker rejects in
// container names replaced by "_".
func Name(id Identity) string {
	name := invalidNameChars.ReplaceAllString(id.TaskName+"-"+id.AllocID, "_")
	if name == "" || !isAlphanumeric(name[0]) {
		name = "x" + name
	}
	return name
}

func isAlphanumeric(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func taskDirBinds(dirs Dirs) []string {
	var binds []string
	if dirs.Alloc != "" {
		binds = append(binds, dirs.Alloc+":"+AllocMountPath)
	}
	if dirs.Local != "" {
		binds = append(binds, dirs.Local+":"+LocalMountPath)
	}
	if dirs.Secrets != "" {
		binds = append(binds, dirs.Secrets+":"+SecretsMountPath)
	}
	return binds
}

// envList returns env as sorted KEY=value pairs, so that the same task
// always produces the same request.
func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for key, value := range env {
		list = append(list, key+"="+value)
	}
	sort.Strings(list)
	return list
}

// PortKey returns the Docker API's key for a TCP container port.
func PortKey(port int) nat.Port {
	return nat.Port(strconv.Itoa(port) + "/tcp")
}

// udpPortKey is the engine's key of a container's UDP port.
func udpPortKey(port int) nat.Port {
	return nat.Port(strconv.Itoa(port) + "/udp")
}
