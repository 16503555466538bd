// Package container turns a decoded task into the Docker Engine API's
// container create request. It does no I/O, so every rule about names,
// labels, mounts, ports and the job's argv is testable without an engine.
package container

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

// Labels that the driver puts on every container it creates. Operators and
// tests select the project's containers with LabelManaged.
const (
	LabelManaged  = "nomad-driver-sshrerun.managed"
	LabelAllocID  = "nomad-driver-sshrerun.alloc_id"
	LabelTaskName = "nomad-driver-sshrerun.task_name"
	LabelJobName  = "nomad-driver-sshrerun.job_name"
	LabelJobID    = "nomad-driver-sshrerun.job_id"

	// LabelPrefix is reserved: task labels may not use it.
	LabelPrefix = "nomad-driver-sshrerun."
)

// Paths inside the container. The plugin binary is mounted read-only and
// runs as the container's init when the task has an ssh block.
const (
	InitDir        = "/.sshrerun"
	InitBinaryPath = InitDir + "/nomad-driver-sshrerun"
	InitConfigPath = InitDir + "/config.json"
	InitSubcommand = "container-init"
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
}

// Image holds the defaults that an image sets and a task may override.
type Image struct {
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
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
}

// Dirs are the host paths of Nomad's task directories.
type Dirs struct {
	Alloc   string
	Local   string
	Secrets string
}

// SSH describes the port binding and the files that the in-container SSH
// server needs. A nil SSH runs the job's argv directly, as Docker would.
type SSH struct {
	HostIP        string
	HostPort      int
	ContainerPort int

	// InitBinary and InitConfig are host paths, mounted read-only.
	InitBinary string
	InitConfig string
}

// Spec is everything needed to build a create request.
type Spec struct {
	Identity Identity
	Task     Task
	Image    Image
	Dirs     Dirs
	SSH      *SSH
}

// Request is the body of a container create call.
type Request struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
}

// Build returns the create request for spec. JobArgv gives the job's argv,
// which the caller also writes into the init's config when SSH is set.
func Build(spec Spec) (*Request, error) {
	argv := JobArgv(spec.Task, spec.Image)
	if len(argv) == 0 {
		return nil, fmt.Errorf("image %q sets no ENTRYPOINT or CMD and the task sets no command; set command in the task config", spec.Task.Image)
	}

	labels, err := Labels(spec.Identity, spec.Task.Labels)
	if err != nil {
		return nil, err
	}

	cfg := &container.Config{
		Image:  spec.Task.Image,
		Env:    envList(spec.Task.Env),
		Labels: labels,
		User:   spec.Task.User,
	}
	host := &container.HostConfig{
		Binds: taskDirBinds(spec.Dirs),
	}

	if spec.SSH == nil {
		cfg.Entrypoint = argv[:1]
		cfg.Cmd = argv[1:]
		return &Request{Name: Name(spec.Identity), Config: cfg, HostConfig: host}, nil
	}

	// with SSH, the init starts the job's argv, so the image's own
	// entrypoint and command are replaced
	if err := addSSH(cfg, host, spec.SSH); err != nil {
		return nil, err
	}
	return &Request{Name: Name(spec.Identity), Config: cfg, HostConfig: host}, nil
}

func addSSH(cfg *container.Config, host *container.HostConfig, ssh *SSH) error {
	if ssh.HostPort < 1 || ssh.HostPort > 65535 {
		return fmt.Errorf("ssh host port %d is out of range 1-65535", ssh.HostPort)
	}
	if ssh.ContainerPort < 1 || ssh.ContainerPort > 65535 {
		return fmt.Errorf("ssh container port %d is out of range 1-65535; set the port label's \"to\" to a valid port", ssh.ContainerPort)
	}
	if ssh.InitBinary == "" || ssh.InitConfig == "" {
		return fmt.Errorf("ssh init binary and config paths must be set")
	}

	port := PortKey(ssh.ContainerPort)
	cfg.ExposedPorts = nat.PortSet{port: struct{}{}}
	host.PortBindings = nat.PortMap{
		port: []nat.PortBinding{{HostIP: ssh.HostIP, HostPort: strconv.Itoa(ssh.HostPort)}},
	}

	cfg.Entrypoint = []string{InitBinaryPath, InitSubcommand, "-config", InitConfigPath}
	cfg.Cmd = nil
	host.Binds = append(host.Binds,
		ssh.InitBinary+":"+InitBinaryPath+":ro",
		ssh.InitConfig+":"+InitConfigPath+":ro",
	)
	return nil
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
	labels := make(map[string]string, len(taskLabels)+5)
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
