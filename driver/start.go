package driver

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
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
	ports, err := taskPorts(cfg, &taskConfig)
	if err != nil {
		return nil, nil, err
	}

	settings, docker, resolver, err := d.state()
	if err != nil {
		return nil, nil, err
	}
	if taskConfig.Privileged && !settings.allowPrivileged {
		return nil, nil, fmt.Errorf("task config privileged = true, but this client does not allow privileged containers; set allow_privileged = true in the plugin config of the client, or remove privileged from the task")
	}
	// a privileged container has every capability, so the options do not apply
	var caps capabilityChange
	if !taskConfig.Privileged {
		if caps, err = containerCapabilities(taskConfig.CapAdd, taskConfig.CapDrop, settings.allowCaps); err != nil {
			return nil, nil, err
		}
	}
	shmSize, err := shmSizeBytes(taskConfig.ShmSize)
	if err != nil {
		return nil, nil, err
	}
	ulimits, err := taskUlimits(taskConfig.Ulimit)
	if err != nil {
		return nil, nil, err
	}
	mounts, err := taskMounts(cfg)
	if err != nil {
		return nil, nil, err
	}
	dns, err := taskDNS(cfg)
	if err != nil {
		return nil, nil, err
	}
	logger := d.logger.With("alloc_id", cfg.AllocID, "task_name", cfg.Name)
	ctx, cancel := context.WithTimeout(d.ctx, dockerCallTimeout)
	defer cancel()

	// the image: present, or pulled; a pull is bounded by its progress, not
	// by the timeout of the other calls
	report := func(message string) { d.emitEvent(cfg, message, nil) }
	if len(caps.KeptForInit) > 0 {
		report(fmt.Sprintf("Kept the capabilities %s, which cap_drop removes, because the container's init needs them", strings.Join(caps.KeptForInit, ", ")))
	}
	img, err := d.ensureImage(d.ctx, docker, &taskConfig, settings.authConfig, settings.pullActivityTimeout, report, logger)
	if err != nil {
		return nil, nil, err
	}

	containerSpec := spec.Spec{
		Identity: spec.Identity{
			AllocID: cfg.AllocID, TaskName: cfg.Name, JobName: cfg.JobName, JobID: cfg.JobID,
			AllocRoot: allocRootOf(cfg.AllocDir),
		},
		Task: spec.Task{
			Image:      taskConfig.Image,
			Entrypoint: taskConfig.Entrypoint,
			Command:    taskConfig.Command,
			Args:       taskConfig.Args,
			Env:        taskEnv(cfg, &taskConfig),
			Labels:     taskConfig.Labels,
			User:       cfg.User,
			Privileged: taskConfig.Privileged,
			WorkDir:    taskConfig.WorkDir,
			ShmSize:    shmSize,
			CapAdd:     caps.Add,
			CapDrop:    caps.Drop,
			Ulimits:    ulimits,
		},
		Resources: taskResources(cfg),
		Mounts:    mounts,
		Devices:   taskDevices(cfg),
		DNS:       dns,
		Dirs: spec.Dirs{
			Alloc:   cfg.TaskDir().SharedAllocDir,
			Local:   cfg.TaskDir().LocalDir,
			Secrets: cfg.TaskDir().SecretsDir,
		},
	}
	if img.Config != nil {
		containerSpec.Image = spec.Image{Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, WorkingDir: img.Config.WorkingDir, User: img.Config.User, Env: img.Config.Env}
	}

	// write the init's config: the job's argv and, with an ssh block, the
	// SSH server's port, keys and host key
	network := &drivers.DriverNetwork{AutoAdvertise: false}
	sshState, execUser, err := d.prepareInit(ctx, cfg, &taskConfig, &containerSpec, settings, resolver)
	if err != nil {
		return nil, nil, err
	}
	if containerSpec.SSH != nil {
		network.PortMap = map[string]int{taskConfig.SSH.Port: containerSpec.SSH.ContainerPort}
	}
	containerSpec.Ports = ports
	for _, port := range ports {
		if network.PortMap == nil {
			network.PortMap = map[string]int{}
		}
		network.PortMap[port.Label] = port.ContainerPort
	}

	request, err := spec.Build(containerSpec)
	if err != nil {
		return nil, nil, err
	}

	// create and start the container, with the log fifos open first, and
	// mark it as starting so that the reconciler leaves it alone until its
	// handle is stored
	d.learnAllocRoot(cfg.AllocDir)
	d.starting.add(request.Name)
	defer d.starting.remove(request.Name)
	containerID, err := createContainer(ctx, docker, request, cfg.AllocID, cfg.Name, logger)
	if err != nil {
		return nil, nil, err
	}
	if err := checkResolvedMountTargets(ctx, docker, containerID, mounts); err != nil {
		removeContainer(docker, containerID, logger)
		return nil, nil, err
	}
	if execUser != "" {
		if err := checkContainerUser(ctx, docker, containerID, execUser, logger); err != nil {
			removeContainer(docker, containerID, logger)
			return nil, nil, err
		}
	}
	fifos, err := openLogFifos(ctx, cfg.StdoutPath, cfg.StderrPath)
	if err != nil {
		removeContainer(docker, containerID, logger)
		return nil, nil, err
	}
	if err := docker.ContainerStart(ctx, containerID, container.StartOptions{}); err != nil {
		if fifos != nil {
			fifos.Close()
		}
		removeContainer(docker, containerID, logger)
		return nil, nil, explainPropagation(fmt.Errorf("failed to start container %s: %w", containerID, err), mounts)
	}

	// record the task so that Nomad can hand it back after a restart
	state := TaskState{ContainerID: containerID, StartedAt: time.Now().UTC(), SSH: sshState, ExecUser: execUser, WorkDir: taskConfig.WorkDir}
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	if err := handle.SetDriverState(&state); err != nil {
		return nil, nil, fmt.Errorf("failed to encode the driver state: %w", err)
	}

	h := newTaskHandle(cfg, state, docker, d.logger)
	h.emit = d.taskEmitter(cfg)
	h.emitReady = func(state *SSHState) { d.emitReady(cfg, state) }
	h.fifos = fifos
	d.tasks.Set(cfg.ID, h)
	go h.run(d.ctx)
	logger.Info("container started", "container_id", containerID, "image", taskConfig.Image)

	if sshState != nil {
		d.emitReady(cfg, sshState)
	}
	return handle, network, nil
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

// removeContainer removes a container that StartTask created but could not
// start.
func removeContainer(docker *client.Client, containerID string, logger hclog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := docker.ContainerRemove(ctx, containerID, container.RemoveOptions{Force: true}); err != nil {
		logger.Warn("failed to remove the container that did not start", "container_id", containerID, "error", err)
	}
}

// taskResources returns the CPU and memory that Nomad allocated to the task.
func taskResources(cfg *drivers.TaskConfig) spec.Resources {
	if cfg.Resources == nil || cfg.Resources.NomadResources == nil {
		return spec.Resources{}
	}
	nomad := cfg.Resources.NomadResources
	resources := spec.Resources{
		CPUShares:   nomad.Cpu.CpuShares,
		MemoryMB:    nomad.Memory.MemoryMB,
		MemoryMaxMB: nomad.Memory.MemoryMaxMB,
	}
	// the reserved cores reach a driver plugin only in this form
	if cfg.Resources.LinuxResources != nil {
		resources.CPUSet = cfg.Resources.LinuxResources.CpusetCpus
	}
	return resources
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
