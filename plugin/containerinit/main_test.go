package main

import (
	"testing"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// The container's entrypoint is the same for both inits, so the small init
// must accept the plugin's subcommand name.
func TestSubcommandMatchesTheContainerSpec(t *testing.T) {
	if subcommand != container.InitSubcommand {
		t.Fatalf("subcommand = %q, the container spec runs %q", subcommand, container.InitSubcommand)
	}
}
