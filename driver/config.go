package driver

import (
	"time"

	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
)

const (
	// PluginName is the name of the plugin in the client's plugin block and
	// of the file in plugin_dir.
	PluginName = "nomad-driver-sshrerun"

	// DriverName is what job files set as the task's driver.
	DriverName = "sshrerun"

	// DefaultDockerEndpoint is where the Docker engine listens on Linux.
	DefaultDockerEndpoint = "unix:///var/run/docker.sock"

	// DefaultDataDir is the plugin's own directory: the init that it carries
	// and the last address that resolved.
	DefaultDataDir = "/var/lib/nomad-driver-sshrerun"

	// DefaultPullActivityTimeout is how long a pull may go without progress
	// before it is cancelled.
	DefaultPullActivityTimeout = 2 * time.Minute

	// DefaultRefreshInterval is how often the fingerprint resolves the
	// advertised address again.
	DefaultRefreshInterval = 30 * time.Second

	// DefaultSSHUser is the login name when the ssh block sets none.
	DefaultSSHUser = "root"

	// DefaultWaitForConnection and DefaultMaxSession are CircleCI's rerun
	// limits: the container stays reachable 10 minutes after the job, and
	// a connection may last 2 hours.
	DefaultWaitForConnection = 10 * time.Minute
	DefaultMaxSession        = 2 * time.Hour

	// taskHandleVersion is the version of TaskState in the driver state.
	taskHandleVersion = 1
)

// PluginVersion is the plugin's version. Release builds set it with
// -ldflags "-X github.com/sshrerun/nomad-driver-sshrerun/driver.PluginVersion=...".
var PluginVersion = "0.1.0-dev"

var pluginInfo = &base.PluginInfoResponse{
	Type:              base.PluginTypeDriver,
	PluginApiVersions: []string{drivers.ApiVersion010},
	PluginVersion:     PluginVersion,
	Name:              DriverName,
}

// configSpec is the plugin block in the Nomad client config.
var configSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"docker_endpoint": hclspec.NewDefault(
		hclspec.NewAttr("docker_endpoint", "string", false),
		hclspec.NewLiteral(`"`+DefaultDockerEndpoint+`"`),
	),
	"allow_privileged": hclspec.NewDefault(
		hclspec.NewAttr("allow_privileged", "bool", false),
		hclspec.NewLiteral("false"),
	),
	"data_dir": hclspec.NewDefault(
		hclspec.NewAttr("data_dir", "string", false),
		hclspec.NewLiteral(`"`+DefaultDataDir+`"`),
	),
	"auth_config": hclspec.NewAttr("auth_config", "string", false),
	"allow_caps": hclspec.NewDefault(
		hclspec.NewAttr("allow_caps", "list(string)", false),
		hclspec.NewLiteral(`["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]`),
	),
	"pull_activity_timeout": hclspec.NewDefault(
		hclspec.NewAttr("pull_activity_timeout", "string", false),
		hclspec.NewLiteral(`"2m"`),
	),
	"advertise": hclspec.NewBlock("advertise", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"override_file": hclspec.NewDefault(
			hclspec.NewAttr("override_file", "string", false),
			hclspec.NewLiteral(`"/etc/circleci/public-ipv4"`),
		),
		"imds_endpoint": hclspec.NewAttr("imds_endpoint", "string", false),
		"imds_timeout": hclspec.NewDefault(
			hclspec.NewAttr("imds_timeout", "string", false),
			hclspec.NewLiteral(`"5s"`),
		),
		"local_ipv4_fallback": hclspec.NewDefault(
			hclspec.NewAttr("local_ipv4_fallback", "bool", false),
			hclspec.NewLiteral("true"),
		),
		"refresh_interval": hclspec.NewDefault(
			hclspec.NewAttr("refresh_interval", "string", false),
			hclspec.NewLiteral(`"30s"`),
		),
		"clouds": hclspec.NewDefault(
			hclspec.NewAttr("clouds", "list(string)", false),
			hclspec.NewLiteral(`["aws"]`),
		),
		"gce_endpoint":   hclspec.NewAttr("gce_endpoint", "string", false),
		"azure_endpoint": hclspec.NewAttr("azure_endpoint", "string", false),
		"family": hclspec.NewDefault(
			hclspec.NewAttr("family", "string", false),
			hclspec.NewLiteral(`"ipv4"`),
		),
	})),
})

// taskConfigSpec is the config block of a task in a job file.
var taskConfigSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"image":      hclspec.NewAttr("image", "string", true),
	"command":    hclspec.NewAttr("command", "string", false),
	"args":       hclspec.NewAttr("args", "list(string)", false),
	"entrypoint": hclspec.NewAttr("entrypoint", "list(string)", false),
	"env":        hclspec.NewAttr("env", "list(map(string))", false),
	"labels":     hclspec.NewAttr("labels", "list(map(string))", false),
	"force_pull": hclspec.NewAttr("force_pull", "bool", false),
	"privileged": hclspec.NewAttr("privileged", "bool", false),
	"ports":      hclspec.NewAttr("ports", "list(string)", false),
	"work_dir":   hclspec.NewAttr("work_dir", "string", false),
	"cap_add":    hclspec.NewAttr("cap_add", "list(string)", false),
	"cap_drop":   hclspec.NewAttr("cap_drop", "list(string)", false),
	"ulimit":     hclspec.NewAttr("ulimit", "list(map(string))", false),
	"shm_size":   hclspec.NewAttr("shm_size", "string", false),
	"auth": hclspec.NewBlock("auth", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"username":       hclspec.NewAttr("username", "string", true),
		"password":       hclspec.NewAttr("password", "string", true),
		"server_address": hclspec.NewAttr("server_address", "string", false),
	})),
	"ssh": hclspec.NewBlock("ssh", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"port":            hclspec.NewAttr("port", "string", true),
		"authorized_keys": hclspec.NewAttr("authorized_keys", "list(string)", true),
		"user": hclspec.NewDefault(
			hclspec.NewAttr("user", "string", false),
			hclspec.NewLiteral(`"`+DefaultSSHUser+`"`),
		),
		"wait_for_connection": hclspec.NewDefault(
			hclspec.NewAttr("wait_for_connection", "string", false),
			hclspec.NewLiteral(`"10m"`),
		),
		"max_session": hclspec.NewDefault(
			hclspec.NewAttr("max_session", "string", false),
			hclspec.NewLiteral(`"2h"`),
		),
	})),
})

var capabilities = &drivers.Capabilities{
	SendSignals:       true,
	Exec:              true,
	FSIsolation:       drivers.FSIsolationImage,
	NetIsolationModes: []drivers.NetIsolationMode{drivers.NetIsolationModeHost},
}

// PluginConfig is the decoded plugin block of the Nomad client config.
type PluginConfig struct {
	DockerEndpoint      string           `codec:"docker_endpoint"`
	AllowPrivileged     bool             `codec:"allow_privileged"`
	DataDir             string           `codec:"data_dir"`
	PullActivityTimeout string           `codec:"pull_activity_timeout"`
	AuthConfig          string           `codec:"auth_config"`
	AllowCaps           []string         `codec:"allow_caps"`
	Advertise           *AdvertiseConfig `codec:"advertise"`
}

// AdvertiseConfig is the advertise block inside the plugin block: where the
// address in the ssh command comes from.
type AdvertiseConfig struct {
	OverrideFile      string   `codec:"override_file"`
	IMDSEndpoint      string   `codec:"imds_endpoint"`
	IMDSTimeout       string   `codec:"imds_timeout"`
	LocalIPv4Fallback bool     `codec:"local_ipv4_fallback"`
	RefreshInterval   string   `codec:"refresh_interval"`
	Clouds            []string `codec:"clouds"`
	GCEEndpoint       string   `codec:"gce_endpoint"`
	AzureEndpoint     string   `codec:"azure_endpoint"`

	// Family is the address family of the ssh command: "ipv4" or "ipv6".
	Family string `codec:"family"`
}

// TaskConfig is the decoded config block of a task.
type TaskConfig struct {
	Image      string             `codec:"image"`
	Command    string             `codec:"command"`
	Args       []string           `codec:"args"`
	Entrypoint []string           `codec:"entrypoint"`
	Env        hclutils.MapStrStr `codec:"env"`
	Labels     hclutils.MapStrStr `codec:"labels"`
	ForcePull  bool               `codec:"force_pull"`
	Privileged bool               `codec:"privileged"`
	Ports      []string           `codec:"ports"`
	WorkDir    string             `codec:"work_dir"`
	ShmSize    string             `codec:"shm_size"`
	CapAdd     []string           `codec:"cap_add"`
	CapDrop    []string           `codec:"cap_drop"`
	Ulimit     hclutils.MapStrStr `codec:"ulimit"`
	Auth       *AuthConfig        `codec:"auth"`
	SSH        *SSHConfig         `codec:"ssh"`
}

// AuthConfig is the auth block of a task's config: the registry
// credentials for pulling the image.
type AuthConfig struct {
	Username      string `codec:"username"`
	Password      string `codec:"password"`
	ServerAddress string `codec:"server_address"`
}

// SSHConfig is the ssh block of a task's config.
type SSHConfig struct {
	Port           string   `codec:"port"`
	AuthorizedKeys []string `codec:"authorized_keys"`
	User           string   `codec:"user"`

	// WaitForConnection and MaxSession are durations: how long the
	// container waits for a first SSH connection after the job's command
	// exits, and how long SSH stays up after the first connection.
	WaitForConnection string `codec:"wait_for_connection"`
	MaxSession        string `codec:"max_session"`
}
