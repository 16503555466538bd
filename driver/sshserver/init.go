package sshserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/hashicorp/go-hclog"
)

// loggerName is the name in every log line of the init.
const loggerName = "sshrerun-init"

// Subcommand is the first argument of the init in a container's entrypoint.
// The plugin binary runs the init under it, and the small init accepts it.
const Subcommand = "container-init"

// Main runs the init with args such as ["-config", "/.sshrerun/config.json"]
// and returns the process exit code: the job's exit code, 126 or 127 when
// the job's command cannot be started, or 125 when the init itself fails.
func Main(args []string) int {
	return runMain(args, os.Stderr)
}

func runMain(args []string, stderr io.Writer) int {
	// catch signals before anything else: as PID 1, a signal that arrives
	// before Notify ends the init with the Go runtime's exit code 2 instead
	// of reaching the job. Run forwards the buffered ones once the job starts.
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, forwardedSignals...)
	defer signal.Stop(signals)

	flags := flag.NewFlagSet(Subcommand, flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "", "path of the JSON init config file that the driver writes (required)")
	sftpDir := flags.String(sftpServerFlag, "", "serve SFTP on stdin and stdout in this directory instead of running a job (the init starts itself so for SSH sessions)")

	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitInitFailure
	}
	if *sftpDir != "" {
		return serveSFTPOnStdio(*sftpDir, stderr)
	}
	if *configPath == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: container-init -config FILE")
		flags.PrintDefaults()
		return exitInitFailure
	}

	cfg, err := ReadConfig(*configPath)
	if err != nil {
		newLogger("", stderr).Error("cannot start the container init", "error", err)
		return exitInitFailure
	}
	logger := newLogger(cfg.LogLevel, stderr)

	code, err := Run(context.Background(), cfg, logger, Options{Signals: signals})
	// Run has logged a failure to start the job already.
	var startErr *jobStartError
	if err != nil && !errors.As(err, &startErr) {
		logger.Error("container init failed", "error", err, "exit_code", code)
	}
	return code
}

// newLogger returns the init's logger at level, which is info when empty.
func newLogger(level string, output io.Writer) hclog.Logger {
	logLevel := hclog.Info
	if level != "" {
		logLevel = hclog.LevelFromString(level)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   loggerName,
		Level:  logLevel,
		Output: output,
	})
}
