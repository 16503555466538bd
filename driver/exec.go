package driver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// ExecTask runs cmd in the task's container and returns its output and
// exit code. Nomad uses it for script checks.
func (d *Driver) ExecTask(taskID string, cmd []string, timeout time.Duration) (*drivers.ExecTaskResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if len(cmd) == 0 {
		return nil, fmt.Errorf("no command to exec")
	}

	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()

	var stdout, stderr bytes.Buffer
	code, err := h.exec(ctx, &drivers.ExecOptions{Command: cmd, Stdout: nopWriteCloser{&stdout}, Stderr: nopWriteCloser{&stderr}})
	if err != nil {
		return nil, err
	}
	return &drivers.ExecTaskResult{
		Stdout:     stdout.Bytes(),
		Stderr:     stderr.Bytes(),
		ExitResult: &drivers.ExitResult{ExitCode: code},
	}, nil
}

// ExecTaskStreaming runs a command in the task's container with streamed
// input and output, and a terminal when opts.Tty is set. It backs
// `nomad alloc exec`.
func (d *Driver) ExecTaskStreaming(ctx context.Context, taskID string, opts *drivers.ExecOptions) (*drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if len(opts.Command) == 0 {
		return nil, fmt.Errorf("no command to exec")
	}

	code, err := h.exec(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &drivers.ExitResult{ExitCode: code}, nil
}

// exec runs opts.Command through the engine's exec API and returns its
// exit code once its output is copied.
func (h *taskHandle) exec(ctx context.Context, opts *drivers.ExecOptions) (int, error) {
	created, err := h.docker.ContainerExecCreate(ctx, h.containerID, container.ExecOptions{
		Cmd:          opts.Command,
		User:         h.state.ExecUser,
		WorkingDir:   h.execWorkDir(ctx),
		Tty:          opts.Tty,
		AttachStdin:  opts.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return 0, fmt.Errorf("failed to create exec in container %s: %w", h.containerID, err)
	}

	attached, err := h.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: opts.Tty})
	if err != nil {
		return 0, fmt.Errorf("failed to start exec in container %s: %w", h.containerID, err)
	}
	defer attached.Close()

	// a cancelled ctx ends the copies by closing the connection
	stop := context.AfterFunc(ctx, attached.Close)
	defer stop()

	if opts.ResizeCh != nil {
		go h.forwardResizes(ctx, created.ID, opts.ResizeCh)
	}
	if opts.Stdin != nil {
		go func() {
			_, _ = io.Copy(attached.Conn, opts.Stdin)
			_ = attached.CloseWrite()
		}()
	}

	// copy the output; with a terminal the engine sends one raw stream
	var copyErr error
	if opts.Tty {
		_, copyErr = io.Copy(opts.Stdout, attached.Reader)
	} else {
		_, copyErr = stdcopy.StdCopy(opts.Stdout, opts.Stderr, attached.Reader)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if copyErr != nil {
		return 0, fmt.Errorf("failed to copy exec output: %w", copyErr)
	}

	// the output ends before the engine records the exit code, so poll
	for {
		inspect, err := h.docker.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return 0, fmt.Errorf("failed to read the exec's exit code: %w", err)
		}
		if !inspect.Running {
			return inspect.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (h *taskHandle) forwardResizes(ctx context.Context, execID string, sizes <-chan drivers.TerminalSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case size, ok := <-sizes:
			if !ok {
				return
			}
			err := h.docker.ContainerExecResize(ctx, execID, container.ResizeOptions{Height: uint(size.Height), Width: uint(size.Width)})
			if err != nil {
				h.logger.Debug("failed to resize the exec's terminal", "error", err)
			}
		}
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// execWorkDir returns the working directory of an exec session: the task's
// work_dir when it is a directory in the container, or "" for the
// container's own, as after a work_dir that could not be created.
func (h *taskHandle) execWorkDir(ctx context.Context) string {
	dir := h.state.WorkDir
	if dir == "" {
		return ""
	}
	stat, err := h.docker.ContainerStatPath(ctx, h.containerID, dir)
	if err != nil || (!stat.Mode.IsDir() && stat.Mode&os.ModeSymlink == 0) {
		h.logger.Warn("the task's work_dir is not a directory, so the exec session starts in the container's working directory", "work_dir", dir, "error", err)
		return ""
	}
	return dir
}
