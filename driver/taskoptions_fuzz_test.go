package driver

import (
	"path"
	"strings"
	"testing"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// FuzzTaskOptionValues decodes work_dir and shm_size as Nomad hands them to
// the driver, and checks that validation never panics, names the option in
// every error, and accepts only values that the container can use.
func FuzzTaskOptionValues(f *testing.F) {
	for _, seed := range [][2]string{
		{"/home/circleci/project", "1g"},
		{"", ""},
		{"project", "512m"},
		{"/.sshrerun/events", "64m"},
		{"/a/../.sshrerun", "2GiB"},
		{"/home//ci/./project/", "0.5g"},
		{"/a\x00b", "512"},
		{"/", "100000000000g"},
		{"/tmp", "-1m"},
		{"/tmp", "1e3m"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, workDir, shmSize string) {
		want := &TaskConfig{Image: "busybox", WorkDir: workDir, ShmSize: shmSize}
		decoded := roundTrip(t, want)
		if decoded.WorkDir != workDir || decoded.ShmSize != shmSize {
			t.Fatalf("decoded work_dir %q and shm_size %q, want %q and %q", decoded.WorkDir, decoded.ShmSize, workDir, shmSize)
		}

		if err := validateTaskConfig(&decoded); err != nil {
			message := err.Error()
			if !strings.HasPrefix(message, "task config work_dir = ") && !strings.HasPrefix(message, "task config shm_size = ") {
				t.Fatalf("error %q names neither work_dir nor shm_size", message)
			}
			return
		}

		if dir := decoded.WorkDir; dir != "" {
			if !path.IsAbs(dir) || path.Clean(dir) != dir || strings.ContainsRune(dir, 0) {
				t.Fatalf("accepted work_dir %q is not a clean absolute path", dir)
			}
			if dir == spec.InitDir || strings.HasPrefix(dir, spec.InitDir+"/") {
				t.Fatalf("accepted work_dir %q is in the init's folder", dir)
			}
		}
		size, err := shmSizeBytes(decoded.ShmSize)
		if err != nil {
			t.Fatalf("validation accepted shm_size %q, which shmSizeBytes refuses: %v", decoded.ShmSize, err)
		}
		if decoded.ShmSize != "" && size < 1<<20 {
			t.Fatalf("accepted shm_size %q is %d bytes, under 1 MiB", decoded.ShmSize, size)
		}
	})
}
