//go:build e2e

package e2e

import (
	"os"
	"testing"

	"github.com/sshrerun/nomad-driver-sshrerun/e2e/harness"
)

// TestMain stops what the agents left running, such as Nomad's log
// collectors of tasks whose agent was killed, once every test is done.
func TestMain(m *testing.M) {
	code := m.Run()
	harness.StopLeftovers()
	os.Exit(code)
}
