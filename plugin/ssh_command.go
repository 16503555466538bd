package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/sshrerun/nomad-driver-sshrerun/driver"
)

const sshCommandUsage = `Usage: nomad-driver-sshrerun ssh-command [-exec [-i KEY]] <alloc id> [task] [-- command]

Prints the ssh command for a task that the sshrerun driver runs, with a
known_hosts line for the task's host key, read from the task's events in
the Nomad API. The task may be left out when the allocation has one task
with SSH. The alloc ID may be a unique prefix.

It reads NOMAD_ADDR, NOMAD_TOKEN and the other NOMAD_* variables that the
nomad command reads.

Options:
  -exec    run ssh instead of printing the command, checking the host key
           against the reported one (StrictHostKeyChecking=yes); the words
           after -- are the remote command
  -i KEY   the private key file that ssh logs in with (ssh -i)
`

// sshEndpoint is the SSH endpoint that a task's ready event reports.
type sshEndpoint struct {
	Host        string
	Port        int
	User        string
	HostKey     string
	Fingerprint string
}

// runSSHCommand implements the ssh-command subcommand and returns the exit
// code.
func runSSHCommand(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("ssh-command", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, sshCommandUsage) }
	execute := flags.Bool("exec", false, "run ssh")
	identity := flags.String("i", "", "the private key file for ssh -i")

	// the words after "--" are the remote command for -exec
	var remote []string
	for i, arg := range args {
		if arg == "--" {
			args, remote = args[:i], args[i+1:]
			break
		}
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() < 1 || flags.NArg() > 2 {
		fmt.Fprint(stderr, sshCommandUsage)
		return 2
	}

	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		fmt.Fprintf(stderr, "error: failed to create the Nomad API client: %v\n", err)
		return 1
	}
	taskName := ""
	if flags.NArg() == 2 {
		taskName = flags.Arg(1)
	}
	endpoint, err := findSSHEndpoint(client, flags.Arg(0), taskName)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}

	knownHosts := knownHostsLine(endpoint)
	if !*execute {
		fmt.Fprintf(stdout, "# host key %s; add this line to ~/.ssh/known_hosts to check it:\n%s\n", endpoint.Fingerprint, knownHosts)
		fmt.Fprintf(stdout, "ssh -p %d %s@%s\n", endpoint.Port, endpoint.User, endpoint.Host)
		return 0
	}
	return execSSH(endpoint, knownHosts, *identity, remote, stderr)
}

// findSSHEndpoint reads the latest ready event of the task.
func findSSHEndpoint(client *api.Client, allocPrefix, taskName string) (*sshEndpoint, error) {
	stubs, _, err := client.Allocations().PrefixList(allocPrefix)
	if err != nil {
		return nil, fmt.Errorf("failed to look up allocation %q: %w", allocPrefix, err)
	}
	switch {
	case len(stubs) == 0:
		return nil, fmt.Errorf("no allocation with ID %q; check the ID with `nomad job status <job>`", allocPrefix)
	case len(stubs) > 1:
		return nil, fmt.Errorf("the prefix %q matches %d allocations; give more of the ID", allocPrefix, len(stubs))
	}
	alloc, _, err := client.Allocations().Info(stubs[0].ID, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to read allocation %s: %w", stubs[0].ID, err)
	}

	names := make([]string, 0, len(alloc.TaskStates))
	for name := range alloc.TaskStates {
		names = append(names, name)
	}
	sort.Strings(names)
	if taskName == "" {
		var withSSH []string
		for _, name := range names {
			if readyEvent(alloc.TaskStates[name]) != nil {
				withSSH = append(withSSH, name)
			}
		}
		switch len(withSSH) {
		case 1:
			taskName = withSSH[0]
		case 0:
			return nil, fmt.Errorf("no task of allocation %s reports an ssh command yet (tasks: %s); a task needs an ssh block in its config and must be running", alloc.ID, strings.Join(names, ", "))
		default:
			return nil, fmt.Errorf("allocation %s has several tasks with SSH (%s); name one", alloc.ID, strings.Join(withSSH, ", "))
		}
	}

	state, ok := alloc.TaskStates[taskName]
	if !ok {
		return nil, fmt.Errorf("allocation %s has no task %q (tasks: %s)", alloc.ID, taskName, strings.Join(names, ", "))
	}
	switch state.State {
	case "pending":
		return nil, fmt.Errorf("task %q of allocation %s is still pending; try again once it runs", taskName, alloc.ID)
	case "dead":
		return nil, fmt.Errorf("task %q of allocation %s has finished, so its SSH server is gone", taskName, alloc.ID)
	}
	event := readyEvent(state)
	if event == nil {
		return nil, fmt.Errorf("task %q of allocation %s reports no ssh command among its last %d events; it needs an ssh block in its config (state: %s)", taskName, alloc.ID, len(state.Events), state.State)
	}

	port, err := strconv.Atoi(event.Details[driver.DetailSSHPort])
	if err != nil {
		return nil, fmt.Errorf("the ready event of task %q has an invalid port %q", taskName, event.Details[driver.DetailSSHPort])
	}
	return &sshEndpoint{
		Host:        event.Details[driver.DetailSSHHost],
		Port:        port,
		User:        event.Details[driver.DetailSSHUser],
		HostKey:     event.Details[driver.DetailHostKey],
		Fingerprint: event.Details[driver.DetailHostKeyFingerprint],
	}, nil
}

// readyEvent returns the task's latest driver event with an ssh port.
func readyEvent(state *api.TaskState) *api.TaskEvent {
	if state == nil {
		return nil
	}
	for i := len(state.Events) - 1; i >= 0; i-- {
		event := state.Events[i]
		if event.Type == api.TaskDriverMessage && event.Details[driver.DetailSSHPort] != "" {
			return event
		}
	}
	return nil
}

// knownHostsLine returns the host key in known_hosts form. OpenSSH writes
// a host on a port other than 22 as [host]:port.
func knownHostsLine(e *sshEndpoint) string {
	host := e.Host
	if e.Port != 22 {
		host = "[" + e.Host + "]:" + strconv.Itoa(e.Port)
	}
	return host + " " + e.HostKey
}

func execSSH(e *sshEndpoint, knownHosts, identity string, remote []string, stderr io.Writer) int {
	if e.HostKey == "" {
		fmt.Fprintln(stderr, "error: the task's event has no host key to check; the driver that started it is too old for -exec")
		return 1
	}
	dir, err := os.MkdirTemp("", "sshrerun-known-hosts-")
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(path, []byte(knownHosts+"\n"), 0o600); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}

	cmd := exec.Command("ssh",
		"-p", strconv.Itoa(e.Port),
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+path)
	if identity != "" {
		cmd.Args = append(cmd.Args, "-i", identity)
	}
	cmd.Args = append(cmd.Args, e.User+"@"+e.Host)
	cmd.Args = append(cmd.Args, remote...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return exitErr.ExitCode()
		}
		fmt.Fprintf(stderr, "error: failed to run ssh: %v\n", err)
		return 1
	}
	return 0
}
