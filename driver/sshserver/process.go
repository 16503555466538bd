package sshserver

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// drainIdleTimeout ends the output copy of a session when its process has
// exited and no output arrived for this long. Without it, a background
// process that keeps the pipe or pty open would keep the session open.
const drainIdleTimeout = time.Second

// processSpec describes a session process to start.
type processSpec struct {
	path string
	argv []string
	env  []string
	dir  string
	pty  *ptyRequest // nil to use pipes

	// credential is the user to run as; nil keeps the init's user.
	credential *syscall.Credential
}

// sessionProcess is a process started for a shell or exec request, with
// the files that connect it to the channel.
type sessionProcess struct {
	child   *child
	pty     *os.File // pty master, nil without a pty
	stdin   *os.File // write end of the stdin pipe, nil with a pty
	outputs []*outputCopy
}

// startSessionProcess starts spec through the reaper and begins copying
// its output to stdout and stderr. With a pty, the process leads a new
// session with the pty as controlling terminal, and all output goes to
// stdout. Without one, it leads a new process group and gets three pipes.
func startSessionProcess(r *reaper, spec processSpec, stdout, stderr io.Writer) (*sessionProcess, error) {
	cmd := &exec.Cmd{Path: spec.path, Args: spec.argv, Env: spec.env, Dir: spec.dir}
	if spec.pty != nil {
		return startWithPTY(r, cmd, spec.pty.window, spec.credential, stdout)
	}
	return startWithPipes(r, cmd, spec.credential, stdout, stderr)
}

func startWithPTY(r *reaper, cmd *exec.Cmd, window windowSize, credential *syscall.Credential, stdout io.Writer) (*sessionProcess, error) {
	master, tty, err := openPTY()
	if err != nil {
		return nil, err
	}
	defer tty.Close()

	if err := setWindowSize(master, window); err != nil {
		_ = master.Close()
		return nil, err
	}
	// the terminal belongs to the session's user, as sshd hands it over
	if credential != nil {
		if err := tty.Chown(int(credential.Uid), int(credential.Gid)); err != nil {
			_ = master.Close()
			return nil, fmt.Errorf("failed to hand the terminal to uid %d: %w", credential.Uid, err)
		}
	}

	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// Since Go 1.15, Ctty is a descriptor number in the child, and 0 is the
	// tty because it is the child's stdin.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Credential: credential}

	c, err := r.start(cmd)
	if err != nil {
		_ = master.Close()
		return nil, err
	}

	proc := &sessionProcess{child: c, pty: master}
	proc.outputs = []*outputCopy{startOutputCopy(master, stdout)}
	return proc, nil
}

func startWithPipes(r *reaper, cmd *exec.Cmd, credential *syscall.Credential, stdout, stderr io.Writer) (*sessionProcess, error) {
	var pipes [3][2]*os.File // read and write end of stdin, stdout, stderr
	closeAll := func() {
		for _, pipe := range pipes {
			for _, file := range pipe {
				if file != nil {
					_ = file.Close()
				}
			}
		}
	}
	for i := range pipes {
		reader, writer, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		pipes[i] = [2]*os.File{reader, writer}
	}

	cmd.Stdin, cmd.Stdout, cmd.Stderr = pipes[0][0], pipes[1][1], pipes[2][1]
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: credential}

	c, err := r.start(cmd)
	if err != nil {
		closeAll()
		return nil, err
	}

	// Close the ends that the child now holds, so that the output pipes
	// reach EOF when the child and its descendants exit.
	for _, file := range []*os.File{pipes[0][0], pipes[1][1], pipes[2][1]} {
		_ = file.Close()
	}

	proc := &sessionProcess{child: c, stdin: pipes[0][1]}
	proc.outputs = []*outputCopy{
		startOutputCopy(pipes[1][0], stdout),
		startOutputCopy(pipes[2][0], stderr),
	}
	return proc, nil
}

// copyInput copies the client's input to the process until the client
// sends EOF or the channel closes. Without a pty, EOF closes the process's
// stdin. With a pty, EOF is ignored, because closing the master would hang
// up the terminal.
func (p *sessionProcess) copyInput(input io.Reader) {
	if p.pty != nil {
		_, _ = io.Copy(p.pty, input)
		return
	}
	_, _ = io.Copy(p.stdin, input)
	_ = p.stdin.Close()
}

// drainOutput waits until the output copies have sent all output. Call it
// after the process has exited.
func (p *sessionProcess) drainOutput() {
	for _, output := range p.outputs {
		output.processExited()
	}
	for _, output := range p.outputs {
		<-output.done
	}
}

// closeFiles closes the session's ends of the pipes or the pty.
func (p *sessionProcess) closeFiles() {
	if p.pty != nil {
		_ = p.pty.Close()
	}
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	for _, output := range p.outputs {
		_ = output.source.Close()
	}
}

// outputCopy copies a pipe or pty master to a channel stream. It ends at
// EOF, at EIO from a pty master whose terminal side is closed, when a write
// fails, or after the process exited and no output came for
// drainIdleTimeout.
type outputCopy struct {
	source *os.File
	exited atomic.Bool
	done   chan struct{}
}

func startOutputCopy(source *os.File, destination io.Writer) *outputCopy {
	output := &outputCopy{source: source, done: make(chan struct{})}
	go output.run(destination)
	return output
}

func (o *outputCopy) run(destination io.Writer) {
	defer close(o.done)

	buffer := make([]byte, 32*1024)
	for {
		if o.exited.Load() {
			// Renew the deadline before each read, so that time spent
			// writing to a slow client does not count as idle time.
			_ = o.source.SetReadDeadline(time.Now().Add(drainIdleTimeout))
		}

		n, err := o.source.Read(buffer)
		if n > 0 {
			if _, writeErr := destination.Write(buffer[:n]); writeErr != nil {
				return
			}
		}
		if err != nil {
			// io.EOF, EIO from the pty, os.ErrDeadlineExceeded or a close.
			return
		}
	}
}

// processExited starts the idle timeout. It also sets the deadline here
// because a read that is already blocked does not see the flag. Pipes and
// the pty master from openPTY are pollable, so the deadline always applies.
func (o *outputCopy) processExited() {
	o.exited.Store(true)
	_ = o.source.SetReadDeadline(time.Now().Add(drainIdleTimeout))
}
