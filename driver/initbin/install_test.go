package initbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall_OneReadOnlyFilePerContent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "init")
	binary := []byte("#!/bin/sh\necho first build\n")

	path, err := Install(dir, binary)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != dir || !strings.HasPrefix(filepath.Base(path), FileName+"-") {
		t.Fatalf("installed at %s, want %s/%s-<hash>", path, dir, FileName)
	}
	assertFile(t, path, binary)
	dirInfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := dirInfo.Mode().Perm(); mode != 0o755 {
		t.Fatalf("data_dir mode = %v, want 0755", mode)
	}

	// the same content keeps the same file; another build gets its own
	again, err := Install(dir, binary)
	if err != nil || again != path {
		t.Fatalf("second install = %s, %v; want %s", again, err, path)
	}
	other, err := Install(dir, []byte("#!/bin/sh\necho second build\n"))
	if err != nil {
		t.Fatal(err)
	}
	if other == path {
		t.Fatalf("two different binaries share the path %s", path)
	}
	assertFile(t, path, binary)

	// no temporary file is left behind
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("data_dir contains %d files, want the 2 installed inits", len(entries))
	}
}

func TestInstall_ReplacesAChangedFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	binary := []byte("the init")
	path, err := Install(dir, binary)
	if err != nil {
		t.Fatal(err)
	}

	// a file of the same name and size but other bytes is not trusted
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("THE INIT"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Install(dir, binary)
	if err != nil || again != path {
		t.Fatalf("install over a changed file = %s, %v; want %s", again, err, path)
	}
	assertFile(t, path, binary)
}

func TestInstall_RejectsUnsafeDir(t *testing.T) {
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, dir, want string
	}{
		{"relative", "var/lib/sshrerun", `"var/lib/sshrerun" is not an absolute path`},
		{"writable by others", shared, "run chmod go-w " + shared},
		{"not a directory", notDir, "is not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Install(tc.dir, []byte("the init"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Install(%q) error = %v, want one that contains %q", tc.dir, err, tc.want)
			}
		})
	}
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o555 {
		t.Errorf("%s has mode %v, want 0555", path, mode)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s contains %q, want %q", path, got, want)
	}
}
