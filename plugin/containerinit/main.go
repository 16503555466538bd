// Command containerinit is the init of job containers: it runs the job and,
// for a task with an ssh block, the SSH server. `make build` builds it and
// embeds it into the plugin binary, which installs it on the host for
// containers to mount read-only. It links only the SSH server, so that it
// holds little memory in each container.
package main

import (
	"os"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

func main() {
	// the container's entrypoint names the subcommand, as it does for the
	// plugin binary, which can serve as the init too
	args := os.Args[1:]
	if len(args) > 0 && args[0] == sshserver.Subcommand {
		args = args[1:]
	}
	os.Exit(sshserver.Main(args))
}
