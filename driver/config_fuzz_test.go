package driver

import (
	"bytes"
	"crypto/ed25519"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/crypto/ssh"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

// fuzzAuthorizedKey is the authorized_keys line of a fixed ed25519 key, so
// that the seeds and the committed corpus stay valid across runs.
var fuzzAuthorizedKey = func() string {
	private := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	key, err := ssh.NewPublicKey(private.Public())
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + " dev@example.com"
}()

// taskConfigInput is one set of fuzzed task config fields.
type taskConfigInput struct {
	image, command, arg           string
	envName, envValue             string
	labelName, labelValue         string
	withSSH                       bool
	sshUser, sshPort              string
	authorizedKey                 string
	waitForConnection, maxSession string
}

// taskConfig returns the task config that the input describes.
func (in taskConfigInput) taskConfig() *TaskConfig {
	cfg := &TaskConfig{
		Image:   in.image,
		Command: in.command,
		Args:    []string{"-c", in.arg},
		Env:     map[string]string{in.envName: in.envValue},
		Labels:  map[string]string{in.labelName: in.labelValue},
	}
	if in.withSSH {
		cfg.SSH = &SSHConfig{
			Port:              in.sshPort,
			User:              in.sshUser,
			AuthorizedKeys:    []string{in.authorizedKey},
			WaitForConnection: in.waitForConnection,
			MaxSession:        in.maxSession,
		}
	}
	return cfg
}

// isLoginName reports whether name is a POSIX portable user name of at most
// 32 bytes that does not start with a digit, '.' or '-'.
func isLoginName(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
		other := (c >= '0' && c <= '9') || c == '.' || c == '-'
		if !letter && (i == 0 || !other) {
			return false
		}
	}
	return true
}

// isDuration reports whether value is empty or a duration of at least
// minimum.
func isDuration(value string, minimum time.Duration) bool {
	if value == "" {
		return true
	}
	d, err := time.ParseDuration(value)
	return err == nil && d >= minimum
}

// expectValid returns whether the documented rules accept cfg, decided
// without validateTaskConfig.
func expectValid(cfg *TaskConfig) bool {
	if cfg.Image == "" || strings.TrimSpace(cfg.Image) != cfg.Image {
		return false
	}
	for name := range cfg.Env {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return false
		}
	}
	for name := range cfg.Labels {
		if name == "" || strings.HasPrefix(name, spec.LabelPrefix) {
			return false
		}
	}
	if cfg.SSH == nil {
		return true
	}

	block := cfg.SSH
	user := block.User
	if user == "" {
		user = DefaultSSHUser
	}
	if strings.TrimSpace(block.Port) == "" || !isLoginName(user) {
		return false
	}
	if !isDuration(block.WaitForConnection, 0) || !isDuration(block.MaxSession, 1) {
		return false
	}
	if len(block.AuthorizedKeys) == 0 {
		return false
	}
	_, err := sshserver.ParseAuthorizedKeys(block.AuthorizedKeys)
	return err == nil
}

// roundTrip encodes want and decodes it again, as msgpack, the way Nomad
// hands the driver its config.
func roundTrip(t *testing.T, want *TaskConfig) TaskConfig {
	t.Helper()
	task := &drivers.TaskConfig{ID: "fuzz", Name: "build"}
	if err := task.EncodeConcreteDriverConfig(want); err != nil {
		t.Fatalf("encoding %+v failed: %v", want, err)
	}
	var decoded TaskConfig
	if err := task.DecodeDriverConfig(&decoded); err != nil {
		t.Fatalf("decoding the encoded config %+v failed: %v", want, err)
	}
	return decoded
}

// checkDecodedEqual fails t unless decoded has the fields of want.
func checkDecodedEqual(t *testing.T, want, decoded *TaskConfig) {
	t.Helper()

	if decoded.Image != want.Image || decoded.Command != want.Command {
		t.Fatalf("image and command decoded as %q, %q; want %q, %q", decoded.Image, decoded.Command, want.Image, want.Command)
	}
	if !slices.Equal(decoded.Args, want.Args) {
		t.Fatalf("args decoded as %q, want %q", decoded.Args, want.Args)
	}
	if !maps.Equal(decoded.Env, want.Env) {
		t.Fatalf("env decoded as %q, want %q", decoded.Env, want.Env)
	}
	if !maps.Equal(decoded.Labels, want.Labels) {
		t.Fatalf("labels decoded as %q, want %q", decoded.Labels, want.Labels)
	}

	if (decoded.SSH == nil) != (want.SSH == nil) {
		t.Fatalf("ssh block decoded as %+v, want %+v", decoded.SSH, want.SSH)
	}
	if want.SSH == nil {
		return
	}
	got, expected := *decoded.SSH, *want.SSH
	if got.Port != expected.Port || got.User != expected.User ||
		got.WaitForConnection != expected.WaitForConnection || got.MaxSession != expected.MaxSession {
		t.Fatalf("ssh block decoded as %+v, want %+v", got, expected)
	}
	if !slices.Equal(got.AuthorizedKeys, expected.AuthorizedKeys) {
		t.Fatalf("ssh.authorized_keys decoded as %q, want %q", got.AuthorizedKeys, expected.AuthorizedKeys)
	}
}

// checkAcceptedConfig fails t unless cfg, which validateTaskConfig accepted,
// keeps the rules that the driver relies on when it builds the container.
func checkAcceptedConfig(t *testing.T, cfg *TaskConfig, inputUser string) {
	t.Helper()

	if cfg.Image == "" || strings.TrimSpace(cfg.Image) != cfg.Image {
		t.Fatalf("accepted image %q is empty or has surrounding spaces", cfg.Image)
	}
	for name := range cfg.Env {
		if name == "" || strings.Contains(name, "=") {
			t.Fatalf("accepted env name %q is empty or contains \"=\"", name)
		}
	}

	// Labels under the driver's prefix pass validation, and building the
	// container's labels rejects them.
	reserved := false
	for name := range cfg.Labels {
		reserved = reserved || strings.HasPrefix(name, spec.LabelPrefix)
	}
	if _, err := spec.Labels(spec.Identity{AllocID: "alloc", TaskName: "build"}, cfg.Labels); (err != nil) != reserved {
		t.Fatalf("container labels for %q: error %v, but a reserved label present is %t", cfg.Labels, err, reserved)
	}

	if cfg.SSH == nil {
		return
	}
	if inputUser == "" && cfg.SSH.User != DefaultSSHUser {
		t.Fatalf("an empty ssh.user became %q, want the default %q", cfg.SSH.User, DefaultSSHUser)
	}
	if !isLoginName(cfg.SSH.User) {
		t.Fatalf("accepted ssh.user %q is not a valid login name", cfg.SSH.User)
	}
	keys, err := sshserver.ParseAuthorizedKeys(cfg.SSH.AuthorizedKeys)
	if err != nil || len(keys) == 0 {
		t.Fatalf("accepted ssh.authorized_keys %q do not parse: %d keys, %v", cfg.SSH.AuthorizedKeys, len(keys), err)
	}
}

func FuzzTaskConfigValidate(f *testing.F) {
	valid := taskConfigInput{
		image: "my-ci-image:latest", command: "/bin/sh", arg: "make test",
		envName: "FOO", envValue: "bar", labelName: "team", labelValue: "ci",
		withSSH: true, sshUser: "root", sshPort: "ssh", authorizedKey: fuzzAuthorizedKey,
		waitForConnection: "10m", maxSession: "2h",
	}
	seeds := []taskConfigInput{valid}
	for _, change := range []func(*taskConfigInput){
		func(in *taskConfigInput) { in.withSSH = false },
		func(in *taskConfigInput) { in.sshUser = "" },
		func(in *taskConfigInput) { in.sshUser = "circleci" },
		func(in *taskConfigInput) { in.sshUser = "_build.user-1" },
		func(in *taskConfigInput) { in.sshUser = "bad user" },
		func(in *taskConfigInput) { in.sshUser = "1000" },
		func(in *taskConfigInput) { in.sshUser = "root\n" },
		func(in *taskConfigInput) { in.sshUser = strings.Repeat("a", 33) },
		func(in *taskConfigInput) { in.image = "" },
		func(in *taskConfigInput) { in.image = " busybox" },
		func(in *taskConfigInput) { in.image = "busybox\n" },
		func(in *taskConfigInput) {
			in.image = "registry.example.com:5000/team/image@sha256:" + strings.Repeat("a", 64)
		},
		func(in *taskConfigInput) { in.envName = "A=B" },
		func(in *taskConfigInput) { in.envName = "" },
		func(in *taskConfigInput) { in.envName = "NUL\x00" },
		func(in *taskConfigInput) { in.envValue = "a=b\nc" },
		func(in *taskConfigInput) { in.labelName = "" },
		func(in *taskConfigInput) { in.labelName = spec.LabelAllocID },
		func(in *taskConfigInput) { in.sshPort = "" },
		func(in *taskConfigInput) { in.sshPort = " \t" },
		func(in *taskConfigInput) { in.authorizedKey = "" },
		func(in *taskConfigInput) { in.authorizedKey = "ssh-rsa AAAA" },
		func(in *taskConfigInput) { in.authorizedKey = `from="10.0.0.1" ` + fuzzAuthorizedKey },
		func(in *taskConfigInput) { in.waitForConnection = "0s" },
		func(in *taskConfigInput) { in.waitForConnection = "10" },
		func(in *taskConfigInput) { in.waitForConnection = "-1m" },
		func(in *taskConfigInput) { in.maxSession = "" },
		func(in *taskConfigInput) { in.maxSession = "0s" },
		func(in *taskConfigInput) { in.maxSession = "1ns" },
		func(in *taskConfigInput) { in.maxSession = "-1h" },
		func(in *taskConfigInput) { in.command = ""; in.arg = "\xff\xfe" },
	} {
		seed := valid
		change(&seed)
		seeds = append(seeds, seed)
	}
	for _, seed := range seeds {
		f.Add(seed.image, seed.command, seed.arg, seed.envName, seed.envValue, seed.labelName, seed.labelValue,
			seed.withSSH, seed.sshUser, seed.sshPort, seed.authorizedKey, seed.waitForConnection, seed.maxSession)
	}

	f.Fuzz(func(t *testing.T, image, command, arg, envName, envValue, labelName, labelValue string,
		withSSH bool, sshUser, sshPort, authorizedKey, waitForConnection, maxSession string) {
		input := taskConfigInput{
			image: image, command: command, arg: arg,
			envName: envName, envValue: envValue, labelName: labelName, labelValue: labelValue,
			withSSH: withSSH, sshUser: sshUser, sshPort: sshPort, authorizedKey: authorizedKey,
			waitForConnection: waitForConnection, maxSession: maxSession,
		}
		want := input.taskConfig()

		decoded := roundTrip(t, want)
		checkDecodedEqual(t, want, &decoded)

		expected := expectValid(&decoded)
		err := validateTaskConfig(&decoded)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "task config ") {
				t.Fatalf("error %q does not start with \"task config \"", err)
			}
			if expected {
				t.Fatalf("validateTaskConfig rejected %+v (ssh %+v), which the documented rules accept: %v", decoded, decoded.SSH, err)
			}
			return
		}
		if !expected {
			t.Fatalf("validateTaskConfig accepted %+v (ssh %+v), which the documented rules reject", decoded, decoded.SSH)
		}
		checkAcceptedConfig(t, &decoded, sshUser)
	})
}
