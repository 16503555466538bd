package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// initLogLevel is the level of the init's own log lines.
const initLogLevel = "warn"

// prepareInit writes the init's config file and fills containerSpec.Init,
// and containerSpec.SSH for a task with an ssh block. It returns what the
// ready event reports, or nil without an ssh block, and the user of exec
// sessions, or "" for the container's own.
func (d *Driver) prepareInit(ctx context.Context, cfg *drivers.TaskConfig, taskConfig *TaskConfig, containerSpec *spec.Spec, settings *settings, resolver *advertise.Resolver) (*SSHState, string, error) {
	initBinary, err := d.currentInit(settings.dataDir)
	if err != nil {
		return nil, "", err
	}

	initConfig := sshserver.Config{
		Command:    spec.JobArgv(containerSpec.Task, containerSpec.Image),
		WorkingDir: spec.WorkingDir(containerSpec.Task, containerSpec.Image),
		// the init creates a work_dir that the image lacks, owned by the
		// job's user
		CreateWorkingDir: containerSpec.Task.WorkDir != "",
		HoldOpen:         holdOpenPaths(cfg),
		// the init's log lines go to the container's stderr, which is the
		// job's stderr in Nomad, so only its warnings and errors are kept
		LogLevel: initLogLevel,
		// the container is on the engine's default bridge network, and the
		// host learns its address from the echo's ARP request
		EchoGateway: true,
	}

	// the init runs as root, so that only it reads its config, which holds
	// the host key, and writes its events. For any other container user,
	// it runs the job and the sessions as that user, whom it looks up in
	// the image's /etc/passwd and /etc/group.
	containerUser := cfg.User
	if containerUser == "" {
		containerUser = containerSpec.Image.User
	}
	if err := validateContainerUser(containerUser); err != nil {
		return nil, "", err
	}
	var execUser string
	if !isRootUser(containerUser) {
		initConfig.RunAs = containerUser
		initConfig.SetHome = !envSetsHome(containerSpec.Image.Env, containerSpec.Task.Env)
		containerSpec.Task.User = "0:0"
		execUser = containerUser
	}

	var sshState *SSHState
	if taskConfig.SSH != nil {
		sshState, err = d.prepareSSH(ctx, cfg, taskConfig, containerSpec, &initConfig, settings, resolver)
		if err != nil {
			return nil, "", err
		}

		eventsDir := eventsHostDir(cfg.TaskDir().Dir)
		if err := makePrivateDir(eventsDir); err != nil {
			return nil, "", err
		}
		initConfig.EventsPath = spec.EventsDir + "/" + eventsFileName
		containerSpec.Init.Events = eventsDir
	}

	// the config holds the host key, so it lives under the task's private
	// directory, which is never mounted whole into the container
	configPath := filepath.Join(cfg.TaskDir().Dir, "private", "sshrerun", "init.json")
	if err := writeInitConfig(configPath, &initConfig); err != nil {
		return nil, "", err
	}
	containerSpec.Init.Binary = initBinary
	containerSpec.Init.Config = configPath
	return sshState, execUser, nil
}

// holdOpenPaths returns the container paths of the task's log fifos, which
// sit in the shared alloc directory that is mounted at /alloc. The init
// holds them open so that Nomad's log collector keeps reading while the
// plugin restarts.
func holdOpenPaths(cfg *drivers.TaskConfig) []string {
	if cfg.AllocDir == "" {
		return nil
	}
	shared := cfg.TaskDir().SharedAllocDir
	var paths []string
	for _, fifo := range []string{cfg.StdoutPath, cfg.StderrPath} {
		rel, err := filepath.Rel(shared, fifo)
		if fifo == "" || err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		paths = append(paths, filepath.Join(spec.AllocMountPath, rel))
	}
	return paths
}

// prepareSSH resolves the advertised address, generates the host key, and
// fills the SSH part of initConfig and containerSpec.SSH.
func (d *Driver) prepareSSH(ctx context.Context, cfg *drivers.TaskConfig, taskConfig *TaskConfig, containerSpec *spec.Spec, initConfig *sshserver.Config, settings *settings, resolver *advertise.Resolver) (*SSHState, error) {
	port, err := sshPort(cfg, taskConfig.SSH.Port)
	if err != nil {
		return nil, err
	}

	current, err := d.currentAddress(ctx, settings, resolver)
	if err != nil {
		return nil, fmt.Errorf("no address to advertise for SSH: %w", err)
	}
	address, source := current.address, current.source

	hostKey, err := newHostKey()
	if err != nil {
		return nil, err
	}

	ctrPort := containerPort(port)
	initConfig.ListenAddress = ":" + strconv.Itoa(ctrPort)
	initConfig.User = taskConfig.SSH.User
	initConfig.AuthorizedKeys = taskConfig.SSH.AuthorizedKeys
	initConfig.HostKey = hostKey.PEM
	initConfig.WaitForConnection = taskConfig.SSH.WaitForConnection
	initConfig.MaxSession = taskConfig.SSH.MaxSession

	containerSpec.SSH = &spec.SSH{Label: port.Label, HostIP: port.HostIP, HostPort: port.Value, ContainerPort: ctrPort}
	return &SSHState{
		Host:               address.String(),
		Port:               port.Value,
		User:               taskConfig.SSH.User,
		AdvertiseSource:    string(source),
		HostKey:            hostKey.PEM,
		HostPublicKey:      hostKey.Public,
		HostKeyFingerprint: hostKey.Fingerprint,
	}, nil
}

// writeInitConfig writes the init's config, which holds the host key, as a
// file that only root can read. The directory is the driver's own, mode
// 0700, because Nomad leaves the task's private directory world-readable.
func writeInitConfig(path string, cfg *sshserver.Config) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("failed to encode the SSH server config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("failed to create the directory for the SSH server config: %w", err)
	}
	// a new file, so that a config left by an earlier start of the task
	// keeps neither its owner nor its content
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("failed to write the SSH server config %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to write the SSH server config %s: %w", path, err)
	}
	return nil
}

// makePrivateDir creates dir, mode 0700, for the init, which runs as root.
func makePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	return nil
}

// validateContainerUser checks a container user in one of Docker's forms:
// "", a name or UID, optionally followed by ":" and a group name or GID.
func validateContainerUser(user string) error {
	if user == "" || containerUserPattern.MatchString(user) {
		return nil
	}
	return fmt.Errorf("the container user %q is invalid; set the task's user to a name or UID, optionally followed by \":\" and a group name or GID, such as \"circleci\" or \"1000:1000\"", user)
}

// isRootUser reports whether user is root with root's group, which the
// init runs as.
func isRootUser(user string) bool {
	switch user {
	case "", "root", "0", "root:root", "0:0", "root:0", "0:root":
		return true
	}
	return false
}

// containerUserPattern matches the user forms of Docker's USER: a name or
// UID, optionally followed by ":" and a group name or GID.
var containerUserPattern = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}(:[A-Za-z0-9._][A-Za-z0-9._-]{0,31})?$`)

// envSetsHome reports whether the image's environment or the task's sets
// HOME, which Docker then leaves alone.
func envSetsHome(imageEnv []string, taskEnv map[string]string) bool {
	if _, ok := taskEnv["HOME"]; ok {
		return true
	}
	for _, entry := range imageEnv {
		if strings.HasPrefix(entry, "HOME=") {
			return true
		}
	}
	return false
}
