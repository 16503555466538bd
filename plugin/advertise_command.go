package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sshrerun/nomad-driver-sshrerun/driver"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
)

const advertiseUsage = `Usage: nomad-driver-sshrerun advertise -config FILE

Resolves the address that the driver advertises in ssh commands, with the
plugin block of the Nomad client config FILE, and prints the decision
trace: each source tried, the value it returned, why it was accepted or
rejected, and the time taken. It exits 0 only when an address of the
configured family resolved.

Run it on the Nomad client, as the user that runs Nomad, because it reads
the same override file and asks the same metadata service.
`

// runAdvertise implements the advertise subcommand and returns the exit
// code.
func runAdvertise(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("advertise", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, advertiseUsage) }
	configPath := flags.String("config", "", "the Nomad client config file with the plugin block")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case *configPath == "":
		fmt.Fprintf(stderr, "error: -config is missing; give the Nomad client config file that contains the plugin block\n\n%s", advertiseUsage)
		return 2
	case flags.NArg() > 0:
		fmt.Fprintf(stderr, "error: unexpected argument %q; advertise takes only -config FILE\n\n%s", flags.Arg(0), advertiseUsage)
		return 2
	}

	pluginConfig, err := driver.PluginConfigFromFile(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	cfg, family, err := driver.ResolverConfig(pluginConfig)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	if err := driver.CheckDataDir(pluginConfig); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	cfg.Logger = hclog.NewNullLogger()
	resolver, err := advertise.NewResolver(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}

	// every cloud gets its own timeout, plus a margin for the file
	timeout := time.Duration(len(cfg.Clouds)+1)*cfg.IMDSTimeout + time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	result, trace, resolveErr := resolver.ResolveTrace(ctx)

	printTrace(stdout, trace)
	if resolveErr != nil {
		fmt.Fprintf(stdout, "\nno address resolved: %v\n", resolveErr)
		return 1
	}
	if result.IPv4.IsValid() {
		fmt.Fprintf(stdout, "\nipv4: %s (%s)\n", result.IPv4, result.IPv4Source)
	}
	if result.IPv6.IsValid() {
		fmt.Fprintf(stdout, "ipv6: %s (%s)\n", result.IPv6, result.IPv6Source)
	}
	address, source, err := result.Address(family)
	if err != nil {
		fmt.Fprintf(stdout, "\nno %s address to advertise: %v\n", family, err)
		return 1
	}
	fmt.Fprintf(stdout, "\nssh commands will use %s, from %s (advertise.family = %q)\n", address, source, family)
	return 0
}

func printTrace(w io.Writer, trace []advertise.Step) {
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(table, "SOURCE\tFAMILY\tOUTCOME\tTIME\tORIGIN\tVALUE\tREASON")
	for _, step := range trace {
		family := string(step.Family)
		if family == "" {
			family = "-"
		}
		value := step.Value
		if value == "" {
			value = "-"
		}
		fmt.Fprintf(table, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", step.Source, family, step.Outcome,
			step.Duration.Round(100*time.Microsecond), step.Origin, value, step.Reason)
	}
	table.Flush()
}
