package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procEntry is a process as /proc/PID/stat describes it.
type procEntry struct {
	pid, parent, group int
}

// listProcesses returns every process that /proc lists, with its parent
// PID and process group ID. Processes that exit while it reads are left out.
func listProcesses() ([]procEntry, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var processes []procEntry
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "stat"))
		if err != nil {
			continue
		}
		// the fields after the command name, which is in parentheses:
		// state, parent PID, process group ID
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 3 {
			continue
		}
		parent, parentErr := strconv.Atoi(fields[1])
		group, groupErr := strconv.Atoi(fields[2])
		if parentErr != nil || groupErr != nil {
			continue
		}
		processes = append(processes, procEntry{pid: pid, parent: parent, group: group})
	}
	return processes, nil
}
