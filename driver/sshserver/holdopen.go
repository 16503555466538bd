package sshserver

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// holdFIFOs opens each FIFO in paths and returns the open files, which the
// caller closes when the init exits. A path that cannot be opened or is not
// a FIFO is logged at warn and skipped, because losing the log collector
// across a plugin restart is no reason to stop the job.
func holdFIFOs(paths []string, logger hclog.Logger) []*os.File {
	var files []*os.File
	var heldPaths []string
	for _, path := range paths {
		file, err := openFIFO(path)
		if err != nil {
			logger.Warn("cannot hold FIFO open; Nomad may stop collecting its logs if the driver plugin restarts", "path", path, "error", err)
			continue
		}
		files = append(files, file)
		heldPaths = append(heldPaths, path)
	}

	if len(heldPaths) > 0 {
		logger.Info("holding log FIFOs open", "paths", heldPaths)
	}
	return files
}

// openFIFO opens the FIFO at path for holding only.
//
// O_RDWR makes open return at once even when the FIFO has no reader, which
// Linux documents in fifo(7) and POSIX leaves undefined. The init never
// reads from the file, so it takes no data from other readers. O_CLOEXEC
// keeps the descriptor out of the job and SSH session processes, which
// could otherwise write to it or keep the FIFO open after the init closes
// it.
func openFIFO(path string) (*os.File, error) {
	// Check the type before opening, so that a device or other special
	// file at path is never opened.
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Type() != fs.ModeNamedPipe {
		return nil, fmt.Errorf("%s is not a FIFO (file mode %s)", path, info.Mode())
	}

	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}

	// Check again on the descriptor, in case path was replaced after Stat.
	var stat unix.Stat_t
	if err := unix.Fstat(fd, &stat); err != nil {
		_ = unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if stat.Mode&unix.S_IFMT != unix.S_IFIFO {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("%s is not a FIFO after opening it; it was replaced", path)
	}

	return os.NewFile(uintptr(fd), path), nil
}

func closeHeldFIFOs(files []*os.File) {
	for _, file := range files {
		_ = file.Close()
	}
}
