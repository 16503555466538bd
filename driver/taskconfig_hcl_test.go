package driver

import (
	"reflect"
	"testing"

	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/stretchr/testify/require"
)

// Every task option decodes from a job file's config block through the
// driver's schema, as Nomad decodes it.
func TestTaskConfigSpec_DecodesEveryOption(t *testing.T) {
	const config = `config {
  image      = "cimg/base:2024.01"
  command    = "make"
  args       = ["test"]
  entrypoint = ["/bin/sh", "-c"]
  env        = { CI = "true" }
  labels     = { team = "build" }
  force_pull = true
  privileged = true
  ports      = ["http"]
  work_dir   = "/home/circleci/project"
  shm_size   = "1g"
  cap_add    = ["SYS_PTRACE"]
  cap_drop   = ["NET_RAW"]
  ulimit     = { nofile = "65536:65536" }

  auth {
    username       = "ci"
    password       = "token"
    server_address = "registry.example.com"
  }

  ssh {
    port                = "ssh"
    user                = "circleci"
    authorized_keys     = ["ssh-ed25519 AAAA dev@example.com"]
    wait_for_connection = "5m"
    max_session         = "1h"
  }
}`
	var got TaskConfig
	hclutils.NewConfigParser(taskConfigSpec).ParseHCL(t, config, &got)

	require.Equal(t, TaskConfig{
		Image:      "cimg/base:2024.01",
		Command:    "make",
		Args:       []string{"test"},
		Entrypoint: []string{"/bin/sh", "-c"},
		Env:        map[string]string{"CI": "true"},
		Labels:     map[string]string{"team": "build"},
		ForcePull:  true,
		Privileged: true,
		Ports:      []string{"http"},
		WorkDir:    "/home/circleci/project",
		ShmSize:    "1g",
		CapAdd:     []string{"SYS_PTRACE"},
		CapDrop:    []string{"NET_RAW"},
		Ulimit:     map[string]string{"nofile": "65536:65536"},
		Auth:       &AuthConfig{Username: "ci", Password: "token", ServerAddress: "registry.example.com"},
		SSH: &SSHConfig{
			Port:              "ssh",
			User:              "circleci",
			AuthorizedKeys:    []string{"ssh-ed25519 AAAA dev@example.com"},
			WaitForConnection: "5m",
			MaxSession:        "1h",
		},
	}, got)

	// the config above sets every option, so a new option fails this test
	// until it is added there
	value := reflect.ValueOf(got)
	for i := range value.NumField() {
		require.False(t, value.Field(i).IsZero(), "the test config does not set %s", value.Type().Field(i).Name)
	}
}
