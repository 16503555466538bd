package advertise

import (
	"os"
	"testing"
)

// TestMain clears AWS_EC2_METADATA_DISABLED, which imds.New reads, once for
// the whole package. A per-test t.Setenv would forbid parallel tests.
func TestMain(m *testing.M) {
	os.Unsetenv("AWS_EC2_METADATA_DISABLED")
	os.Exit(m.Run())
}
