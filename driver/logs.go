package driver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/lib/fifo"
)

// logFifos are a task's open log fifos.
type logFifos struct {
	stdout io.WriteCloser
	stderr io.WriteCloser
}

// openLogFifos opens the task's log fifos for writing, or returns nil when
// Nomad gave the task none. StartTask opens them before it starts the
// container: the init holds them open too, and if it exited before the
// plugin's writer opened, Nomad's log collector would see the last writer
// go and stop reading.
func openLogFifos(ctx context.Context, stdoutPath, stderrPath string) (*logFifos, error) {
	if stdoutPath == "" || stderrPath == "" {
		return nil, nil
	}
	stdout, stderr, err := openFifos(ctx, stdoutPath, stderrPath)
	if err != nil {
		return nil, err
	}
	return &logFifos{stdout: stdout, stderr: stderr}, nil
}

func (f *logFifos) Close() {
	f.stdout.Close()
	f.stderr.Close()
}

// logStreamer copies a container's stdout and stderr, kept apart, into the
// fifos that Nomad's log collector reads. It runs inside the plugin
// process, one goroutine per task.
//
// The engine stamps every line with its time. The streamer records the
// time of the last line it delivered in a position file, and a recovered
// task resumes after that line, so a plugin or agent restart neither loses
// nor repeats lines. Two lines with the very same nanosecond stamp across
// a restart are the exception: the second is skipped.
type logStreamer struct {
	docker       *client.Client
	containerID  string
	stdoutPath   string
	stderrPath   string
	positionPath string
	logger       hclog.Logger

	// fifos are the open fifos, or nil until run opens them.
	fifos *logFifos

	// cursor is the time of the last delivered line.
	cursor time.Time

	// done is closed when the stream has ended and the fifos are closed.
	done chan struct{}

	// cancel ends the stream early, for a task whose exit is reported
	// while the engine cannot be reached for the rest of its output.
	cancel context.CancelFunc

	// failingSince is when the stream last failed, or zero while it runs.
	// Only the first failure of an outage is logged as a warning.
	failingSince time.Time
}

// logPositionPath returns where the streamer of a task keeps its position.
func logPositionPath(taskDir string) string {
	return filepath.Join(taskDir, "private", "sshrerun", "logs.position")
}

// startLogStreamer starts copying logs until the container stops or ctx
// ends. It writes to fifos when they are open already, or opens the fifos
// at stdoutPath and stderrPath. It returns nil when Nomad gave the task no
// log fifos.
func startLogStreamer(ctx context.Context, docker *client.Client, containerID string, fifos *logFifos, stdoutPath, stderrPath, positionPath string, logger hclog.Logger) *logStreamer {
	if fifos == nil && (stdoutPath == "" || stderrPath == "") {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &logStreamer{
		docker:       docker,
		containerID:  containerID,
		stdoutPath:   stdoutPath,
		stderrPath:   stderrPath,
		positionPath: positionPath,
		logger:       logger,
		fifos:        fifos,
		cursor:       readLogPosition(positionPath, logger),
		done:         make(chan struct{}),
		cancel:       cancel,
	}
	go s.run(ctx)
	return s
}

func (s *logStreamer) run(ctx context.Context) {
	defer close(s.done)

	if s.fifos == nil {
		fifos, err := openLogFifos(ctx, s.stdoutPath, s.stderrPath)
		if err != nil {
			s.logger.Error("failed to open the task's log fifos; the task's logs are lost", "error", err)
			return
		}
		s.fifos = fifos
	}
	defer s.fifos.Close()
	stdout, stderr := s.fifos.stdout, s.fifos.stderr

	for {
		err := s.stream(ctx, stdout, stderr)
		if err == nil || ctx.Err() != nil {
			return
		}
		if cerrdefs.IsNotFound(err) {
			s.logger.Warn("the container is gone; its log stream ends", "error", err)
			return
		}

		// the engine may be restarting: resume after the last line
		if s.failingSince.IsZero() {
			s.failingSince = time.Now()
			s.logger.Warn("the log stream failed, resuming once the Docker engine responds", "error", err)
		} else {
			s.logger.Debug("the log stream failed again", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// stream follows the container's logs until the container stops.
func (s *logStreamer) stream(ctx context.Context, stdout, stderr io.Writer) error {
	options := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}
	if !s.cursor.IsZero() {
		options.Since = strconv.FormatInt(s.cursor.Unix(), 10) + "." + fmt.Sprintf("%09d", s.cursor.Nanosecond())
	}
	body, err := s.docker.ContainerLogs(ctx, s.containerID, options)
	if err != nil {
		return fmt.Errorf("failed to read the logs of container %s: %w", s.containerID, err)
	}
	defer body.Close()
	if !s.failingSince.IsZero() {
		s.logger.Info("the log stream resumed", "outage", time.Since(s.failingSince).Round(time.Millisecond))
		s.failingSince = time.Time{}
	}
	return s.copyFrames(body, stdout, stderr)
}

// copyFrames demultiplexes the engine's log stream. Each frame has an
// 8-byte header: the stream (1 stdout, 2 stderr), three zero bytes and the
// payload size as a big-endian uint32. The payload is one line that starts
// with its RFC 3339 time stamp and a space.
func (s *logStreamer) copyFrames(r io.Reader, stdout, stderr io.Writer) error {
	reader := bufio.NewReaderSize(r, 64*1024)
	header := make([]byte, 8)
	var payload []byte
	for {
		if _, err := io.ReadFull(reader, header); err != nil {
			s.savePosition()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}

		size := binary.BigEndian.Uint32(header[4:])
		if cap(payload) < int(size) {
			payload = make([]byte, size)
		}
		payload = payload[:size]
		if _, err := io.ReadFull(reader, payload); err != nil {
			s.savePosition()
			return err
		}

		stamp, line := splitTimestamp(payload)
		if !stamp.IsZero() && !stamp.After(s.cursor) {
			continue // delivered before a restart
		}

		out := stdout
		if header[0] == 2 {
			out = stderr
		}
		if _, err := out.Write(line); err != nil {
			return fmt.Errorf("failed to write to the log fifo: %w", err)
		}
		if !stamp.IsZero() {
			s.cursor = stamp
		}

		// save the position once per batch, when no more input is waiting
		if reader.Buffered() == 0 {
			s.savePosition()
		}
	}
}

func splitTimestamp(payload []byte) (time.Time, []byte) {
	i := bytes.IndexByte(payload, ' ')
	if i < 0 {
		return time.Time{}, payload
	}
	stamp, err := time.Parse(time.RFC3339Nano, string(payload[:i]))
	if err != nil {
		return time.Time{}, payload
	}
	return stamp, payload[i+1:]
}

func (s *logStreamer) savePosition() {
	if s.cursor.IsZero() {
		return
	}
	data := []byte(s.cursor.Format(time.RFC3339Nano))
	tmp := s.positionPath + ".tmp"
	if err := os.MkdirAll(filepath.Dir(s.positionPath), 0o700); err != nil {
		s.logger.Warn("failed to save the log position", "error", err)
		return
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		s.logger.Warn("failed to save the log position", "error", err)
		return
	}
	if err := os.Rename(tmp, s.positionPath); err != nil {
		s.logger.Warn("failed to save the log position", "error", err)
	}
}

func readLogPosition(path string, logger hclog.Logger) time.Time {
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Warn("failed to read the log position; logs start from the beginning", "error", err)
		}
		return time.Time{}
	}
	stamp, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(data)))
	if err != nil {
		logger.Warn("invalid log position; logs start from the beginning", "position", string(data), "error", err)
		return time.Time{}
	}
	return stamp
}

// openFifos opens both fifos for writing. Opening a fifo blocks until its
// reader, Nomad's log collector, has it open, so ctx bounds the wait.
func openFifos(ctx context.Context, stdoutPath, stderrPath string) (io.WriteCloser, io.WriteCloser, error) {
	type result struct {
		w   io.WriteCloser
		err error
	}
	open := func(path string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			w, err := fifo.OpenWriter(path)
			ch <- result{w, err}
		}()
		return ch
	}

	var writers [2]io.WriteCloser
	for i, path := range []string{stdoutPath, stderrPath} {
		select {
		case r := <-open(path):
			if r.err != nil {
				for _, w := range writers[:i] {
					w.Close()
				}
				return nil, nil, fmt.Errorf("failed to open log fifo %s: %w", path, r.err)
			}
			writers[i] = r.w
		case <-ctx.Done():
			for _, w := range writers[:i] {
				w.Close()
			}
			return nil, nil, ctx.Err()
		}
	}
	return writers[0], writers[1], nil
}
