package sshserver

import (
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// rfc4254Signals are the signal names of RFC 4254 section 6.10, which SSH
// clients send in signal requests and expect in exit-signal messages.
var rfc4254Signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT,
	"ALRM": syscall.SIGALRM,
	"FPE":  syscall.SIGFPE,
	"HUP":  syscall.SIGHUP,
	"ILL":  syscall.SIGILL,
	"INT":  syscall.SIGINT,
	"KILL": syscall.SIGKILL,
	"PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV,
	"TERM": syscall.SIGTERM,
	"USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// parseSSHSignal returns the signal for an RFC 4254 signal name such as
// "TERM".
func parseSSHSignal(name string) (syscall.Signal, bool) {
	sig, ok := rfc4254Signals[name]
	return sig, ok
}

// sshSignalName returns the exit-signal name of sig: the RFC 4254 name, or
// "SIG@openssh.com" for other signals, as sig2name in OpenSSH's session.c
// does.
func sshSignalName(sig syscall.Signal) string {
	name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
	if _, ok := rfc4254Signals[name]; ok {
		return name
	}
	return "SIG@openssh.com"
}

// signalName returns the name of sig for logs, such as "SIGTERM".
func signalName(sig os.Signal) string {
	if number, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(number); name != "" {
			return name
		}
	}
	return sig.String()
}
