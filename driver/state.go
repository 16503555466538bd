package driver

import (
	"sync"
	"time"
)

// TaskState is the driver state that Nomad stores for each task and hands
// back to RecoverTask after an agent or plugin restart.
type TaskState struct {
	ContainerID string
	StartedAt   time.Time

	// SSH is nil for a task without an ssh block.
	SSH *SSHState

	// ExecUser is the user of `nomad alloc exec` sessions: the task's named
	// user, whom the init runs the job as while the container runs as
	// root. Empty for a container that runs as its user.
	ExecUser string `json:",omitempty"`

	// WorkDir is the working directory of `nomad alloc exec` sessions: the
	// task's work_dir, which the init creates. Empty for the container's
	// own, the image's WORKDIR.
	WorkDir string `json:",omitempty"`
}

// SSHState is the SSH endpoint that the ready event reported, kept so that
// a recovered task can report it again.
type SSHState struct {
	Host            string
	Port            int
	User            string
	AdvertiseSource string

	// HostKey is the task's ed25519 host key in OpenSSH PEM form. It is
	// generated once per task and never logged.
	HostKey            string
	HostPublicKey      string
	HostKeyFingerprint string
}

// taskStore holds the handles of running and finished tasks by task ID.
type taskStore struct {
	mu    sync.RWMutex
	store map[string]*taskHandle
}

func newTaskStore() *taskStore {
	return &taskStore{store: map[string]*taskHandle{}}
}

func (ts *taskStore) Set(id string, handle *taskHandle) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.store[id] = handle
}

func (ts *taskStore) Get(id string) (*taskHandle, bool) {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	handle, ok := ts.store[id]
	return handle, ok
}

func (ts *taskStore) Delete(id string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.store, id)
}

// All returns the handles of every task.
func (ts *taskStore) All() []*taskHandle {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	handles := make([]*taskHandle, 0, len(ts.store))
	for _, h := range ts.store {
		handles = append(handles, h)
	}
	return handles
}
