package sshserver

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// testOwner returns an identity whose files a test can create: another
// user when the test runs as root, otherwise the test's own user.
func testOwner() *identity {
	if os.Geteuid() == 0 {
		return &identity{name: "builder", uid: 1234, gid: 5678}
	}
	return &identity{name: "self", uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
}

func ownerOf(t *testing.T, path string) (uint32, uint32, os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	st := info.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, info.Mode()
}

// The directories that createWorkingDir makes belong to the user, and the
// ones that existed keep their owner and mode.
func TestCreateWorkingDir_OwnsWhatItCreates(t *testing.T) {
	base := t.TempDir()
	existing := filepath.Join(base, "home")
	require.NoError(t, os.Mkdir(existing, 0o700))
	uid0, gid0, mode0 := ownerOf(t, existing)

	// a strict umask shows that the mode is set, not left to the umask
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	owner := testOwner()
	dir := filepath.Join(existing, "builder", "project")
	require.NoError(t, createWorkingDir(dir+"/", owner))

	for _, created := range []string{filepath.Join(existing, "builder"), dir} {
		uid, gid, mode := ownerOf(t, created)
		require.Equal(t, owner.uid, uid, created)
		require.Equal(t, owner.gid, gid, created)
		require.Equal(t, os.ModeDir|0o755, mode, created)
	}
	uid, gid, mode := ownerOf(t, existing)
	require.Equal(t, []any{uid0, gid0, mode0}, []any{uid, gid, mode})

	// a second call finds everything in place
	require.NoError(t, createWorkingDir(dir, owner))
}

func TestCreateWorkingDir_Errors(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))

	err := createWorkingDir(filepath.Join(file, "project"), nil)
	require.EqualError(t, err, file+" exists and is not a directory")

	// a link to a directory is followed, as the image has it
	target := filepath.Join(base, "target")
	require.NoError(t, os.Mkdir(target, 0o755))
	link := filepath.Join(base, "link")
	require.NoError(t, os.Symlink(target, link))
	require.NoError(t, createWorkingDir(filepath.Join(link, "project"), nil))
	info, err := os.Stat(filepath.Join(target, "project"))
	require.NoError(t, err)
	require.True(t, info.IsDir())

	err = createWorkingDir("project", nil)
	require.EqualError(t, err, `working directory "project" is not an absolute path`)
}

// A config that sets create_working_dir must also set working_dir.
func TestConfigValidate_CreateWorkingDirNeedsDir(t *testing.T) {
	cfg := Config{Command: []string{"true"}, CreateWorkingDir: true}
	require.ErrorContains(t, cfg.Validate(), "create_working_dir is set without working_dir")
}
