// Command nomad-driver-sshrerun is the sshrerun Nomad task driver plugin.
//
// Nomad starts it with no arguments and talks to it over go-plugin. The
// same static binary is mounted read-only into job containers, where it
// runs as their init and SSH server under the container-init subcommand, so
// that plugin_dir holds exactly one file.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	"github.com/sshrerun/nomad-driver-sshrerun/driver"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/container"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/sshserver"
)

const usage = `Usage: nomad-driver-sshrerun [command]

With no command, serves the sshrerun task driver to a Nomad client. Install
this file into the client's plugin_dir; Nomad starts it. The README
documents the plugin and task options.

Commands:
  advertise         print how the advertised address resolves (advertise -h)
  ssh-command       print or run the ssh command of a task (see ssh-command -h)
  version           print the version
  container-init    run as a job container's init and SSH server (the driver
                    starts this inside containers; operators never run it)
`

func main() {
	if len(os.Args) < 2 {
		plugins.Serve(func(logger hclog.Logger) interface{} {
			return driver.NewPlugin(logger)
		})
		return
	}

	switch os.Args[1] {
	case container.InitSubcommand:
		os.Exit(sshserver.Main(os.Args[2:]))
	case "advertise":
		os.Exit(runAdvertise(os.Args[2:], os.Stdout, os.Stderr))
	case "ssh-command":
		os.Exit(runSSHCommand(os.Args[2:], os.Stdout, os.Stderr))
	case "version", "-version", "--version":
		fmt.Printf("%s %s\n", driver.PluginName, driver.PluginVersion)
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
