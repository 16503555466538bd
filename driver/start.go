package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// dockerCallTimeout bounds each Docker API call that StartTask makes.
const dockerCallTimeout = 2 * time.Minute

// StartTask creates and starts the task's container and, for a task with
// an ssh block, reports the ssh command in a driver event.
func (d *Driver) StartTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	if _, ok := d.tasks.Get(cfg.ID); ok {
		return nil, nil, fmt.Errorf("task with ID %q already started", cfg.ID)
	}

	// decode and validate the task config
	var taskConfig TaskConfig
	if err := cfg.DecodeDriverConfig(&taskConfig); err != nil {
		return nil, nil, fmt.Errorf("failed to decode the task config: %w", err)
	}
	if err := validateTaskConfig(&taskConfig); err != nil {
		return nil, nil, err
	}

	settings, docker, resolver, err := d.state()
	if err != nil {
		return nil, nil, err
	}
	logger := d.logger.With("alloc_id", cfg.AllocID, "task_name", cfg.Name)
	ctx, cancel := context.WithTimeout(d.ctx, dockerCallTimeout)
	defer cancel()

	// the image must be present: pulls are not supported yet
	// TODO: pull missing images, with force_pull and registry auth.
	img, err := docker.ImageInspect(ctx, taskConfig.Image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, nil, fmt.Errorf("image %q is not present on this client; build or load it with the Docker engine first (this driver does not pull images yet)", taskConfig.Image)
		}
		return nil, nil, fmt.Errorf("failed to inspect image %q: %w", taskConfig.Image, err)
	}

	containerSpec := spec.Spec{
		Identity: spec.Identity{AllocID: cfg.AllocID, TaskName: cfg.Name, JobName: cfg.JobName, JobID: cfg.JobID},
		Task: spec.Task{
			Image:      taskConfig.Image,
			Entrypoint: taskConfig.Entrypoint,
			Command:    taskConfig.Command,
			Args:       taskConfig.Args,
			Env:        taskEnv(cfg, &taskConfig),
			Labels:     taskConfig.Labels,
			User:       cfg.User,
		},
		Dirs: spec.Dirs{
			Alloc:   cfg.TaskDir().SharedAllocDir,
			Local:   cfg.TaskDir().LocalDir,
			Secrets: cfg.TaskDir().SecretsDir,
		},
	}
	if img.Config != nil {
		containerSpec.Image = spec.Image{Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, WorkingDir: img.Config.WorkingDir, User: img.Config.User}
	}

	// prepare SSH: the port, the advertised address, the host key and the
	// init's config file
	network := &drivers.DriverNetwork{AutoAdvertise: false}
	var sshState *SSHState
	if taskConfig.SSH != nil {
		sshState, err = d.prepareSSH(ctx, cfg, &taskConfig, &containerSpec, settings, resolver)
		if err != nil {
			return nil, nil, err
		}
		network.PortMap = map[string]int{taskConfig.SSH.Port: containerSpec.SSH.ContainerPort}
	}

	request, err := spec.Build(containerSpec)
	if err != nil {
		return nil, nil, err
	}

	// create and start the container
	containerID, err := createContainer(ctx, docker, request, cfg.AllocID, cfg.Name, logger)
	if err != nil {
		return nil, nil, err
	}
	if err := docker.ContainerStart(ctx, containerID, container.StartOptions{}); err != nil {
		removeCtx, removeCancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer removeCancel()
		if rmErr := docker.ContainerRemove(removeCtx, containerID, container.RemoveOptions{Force: true}); rmErr != nil {
			logger.Warn("failed to remove the container that did not start", "container_id", containerID, "error", rmErr)
		}
		return nil, nil, fmt.Errorf("failed to start container %s: %w", containerID, err)
	}

	// record the task so that Nomad can hand it back after a restart
	state := TaskState{ContainerID: containerID, StartedAt: time.Now().UTC(), SSH: sshState}
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	if err := handle.SetDriverState(&state); err != nil {
		return nil, nil, fmt.Errorf("failed to encode the driver state: %w", err)
	}

	h := newTaskHandle(cfg, state, docker, d.logger)
	d.tasks.Set(cfg.ID, h)
	go h.run(d.ctx)
	logger.Info("container started", "container_id", containerID, "image", taskConfig.Image)

	if sshState != nil {
		d.emitReady(cfg, sshState)
	}
	return handle, network, nil
}

// prepareSSH fills containerSpec.SSH and returns what the ready event
// reports.
func (d *Driver) prepareSSH(ctx context.Context, cfg *drivers.TaskConfig, taskConfig *TaskConfig, containerSpec *spec.Spec, settings *settings, resolver *advertise.Resolver) (*SSHState, error) {
	port, err := sshPort(cfg, taskConfig.SSH.Port)
	if err != nil {
		return nil, err
	}

	addr, err := resolver.Current(ctx, settings.refreshInterval)
	if err != nil {
		return nil, fmt.Errorf("no address to advertise for SSH: %w", err)
	}

	hostKey, err := newHostKey()
	if err != nil {
		return nil, err
	}

	if d.initBinary == "" {
		return nil, fmt.Errorf("the plugin could not find its own executable, which containers run as their init; check the agent log at start")
	}

	// the config holds the host key, so it lives under the task's private
	// directory, which is never mounted whole into the container
	ctrPort := containerPort(port)
	initConfig := sshserver.Config{
		ListenAddress:  ":" + strconv.Itoa(ctrPort),
		User:           taskConfig.SSH.User,
		AuthorizedKeys: taskConfig.SSH.AuthorizedKeys,
		HostKey:        hostKey.PEM,
		Command:        spec.JobArgv(containerSpec.Task, containerSpec.Image),
		WorkingDir:     containerSpec.Image.WorkingDir,
	}
	containerUser := cfg.User
	if containerUser == "" {
		containerUser = containerSpec.Image.User
	}
	configPath := filepath.Join(cfg.TaskDir().Dir, "private", "sshrerun", "init.json")
	if err := writeInitConfig(configPath, &initConfig, containerUser); err != nil {
		return nil, err
	}

	containerSpec.SSH = &spec.SSH{
		HostIP:        port.HostIP,
		HostPort:      port.Value,
		ContainerPort: ctrPort,
		InitBinary:    d.initBinary,
		InitConfig:    configPath,
	}
	return &SSHState{
		Host:               addr.Address.String(),
		Port:               port.Value,
		User:               taskConfig.SSH.User,
		AdvertiseSource:    string(addr.Source),
		HostKey:            hostKey.PEM,
		HostKeyFingerprint: hostKey.Fingerprint,
	}, nil
}

// writeInitConfig writes the init's config, which holds the host key, as a
// file that only the container's user can read. The directory is the
// driver's own, mode 0700, because Nomad leaves the task's private
// directory world-readable.
func writeInitConfig(path string, cfg *sshserver.Config, containerUser string) error {
	uid, gid, err := numericUser(containerUser)
	if err != nil {
		return err
	}

	data, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("failed to encode the SSH server config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("failed to create the directory for the SSH server config: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("failed to write the SSH server config %s: %w", path, err)
	}
	if uid != 0 || gid != 0 {
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("failed to hand the SSH server config %s to the container user %q: %w", path, containerUser, err)
		}
	}
	return nil
}

// numericUser returns the uid and gid of a container user given as "",
// "root", "uid" or "uid:gid". The init runs as that user and must read its
// config, so a user known only by name inside the image is an error.
// TODO: run the init as root and switch to a named user inside the
// container, where its /etc/passwd can resolve the name.
func numericUser(user string) (int, int, error) {
	if user == "" || user == "root" {
		return 0, 0, nil
	}
	name, group, _ := strings.Cut(user, ":")
	uid, err := strconv.Atoi(name)
	if err != nil || uid < 0 {
		return 0, 0, fmt.Errorf("the container user %q is not numeric, and the SSH server runs as that user; set the task's user to a numeric UID such as \"1000\" or \"1000:1000\"", user)
	}
	gid := uid
	if group != "" {
		if gid, err = strconv.Atoi(group); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("the container user %q has a non-numeric group; set the task's user to a numeric UID and GID such as \"1000:1000\"", user)
		}
	}
	return uid, gid, nil
}

// createContainer creates the container. A container left with the same
// name by an earlier attempt of the same task, for example when the plugin
// died during StartTask, is removed and the create is tried once more.
func createContainer(ctx context.Context, docker *client.Client, request *spec.Request, allocID, taskName string, logger hclog.Logger) (string, error) {
	created, err := docker.ContainerCreate(ctx, request.Config, request.HostConfig, nil, nil, request.Name)
	if err == nil {
		return created.ID, nil
	}
	if !cerrdefs.IsConflict(err) {
		return "", fmt.Errorf("failed to create container %s: %w", request.Name, err)
	}

	existing, inspectErr := docker.ContainerInspect(ctx, request.Name)
	if inspectErr != nil || existing.Config == nil ||
		existing.Config.Labels[spec.LabelAllocID] != allocID || existing.Config.Labels[spec.LabelTaskName] != taskName {
		return "", fmt.Errorf("failed to create container %s: the name is taken by a container that this task did not create: %w", request.Name, err)
	}

	logger.Warn("removing a container left by an earlier start of this task", "container_id", existing.ID)
	if err := docker.ContainerRemove(ctx, existing.ID, container.RemoveOptions{Force: true}); err != nil {
		return "", fmt.Errorf("failed to remove container %s left by an earlier start of this task: %w", existing.ID, err)
	}
	created, err = docker.ContainerCreate(ctx, request.Config, request.HostConfig, nil, nil, request.Name)
	if err != nil {
		return "", fmt.Errorf("failed to create container %s: %w", request.Name, err)
	}
	return created.ID, nil
}

// taskEnv merges Nomad's task environment, the device environment and the
// task config's env. The task config's env wins on a conflict.
func taskEnv(cfg *drivers.TaskConfig, taskConfig *TaskConfig) map[string]string {
	env := make(map[string]string, len(cfg.Env)+len(cfg.DeviceEnv)+len(taskConfig.Env))
	for key, value := range cfg.Env {
		env[key] = value
	}
	for key, value := range cfg.DeviceEnv {
		env[key] = value
	}
	for key, value := range taskConfig.Env {
		env[key] = value
	}
	return env
}
