package advertise

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestResolve_OverrideContentRejected covers override files whose content is
// not one address. Each is an error and never falls through to metadata.
func TestResolve_OverrideContentRejected(t *testing.T) {
	cases := []struct {
		name    string
		content string
		wantErr string
	}{
		{name: "empty", content: "", wantErr: `"" is empty`},
		{name: "whitespace only", content: " \t\r\n", wantErr: `" \t\r\n" contains only whitespace`},
		{name: "several lines", content: "203.0.113.7\n203.0.113.8\n", wantErr: `"203.0.113.7\n203.0.113.8\n" has more than one line`},
		{name: "address with port", content: "203.0.113.7:22\n", wantErr: `"203.0.113.7:22\n" is not an IP address (it has a port)`},
		{name: "IPv6 address with port", content: "[2001:db8::7]:22", wantErr: `"[2001:db8::7]:22" is not an IP address (it has a port)`},
		{name: "prefix length", content: "203.0.113.0/24\n", wantErr: `"203.0.113.0/24\n" is not an IP address (it has a prefix length)`},
		{name: "host name", content: "ssh.example.com\n", wantErr: `"ssh.example.com\n" is not an IP address`},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeIMDS(t)
			fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
			resolver := newTestResolver(t, fake, nil)
			writeOverride(t, resolver, tc.content)
			path := resolver.cfg.OverrideFile

			res, trace, err := resolver.ResolveTrace(context.Background())

			assertErrorContains(t, err,
				"override file "+path+": "+tc.wantErr,
				"write one IPv4 or IPv6 address to the file, or delete it to use instance metadata")
			if res.IPv4.IsValid() || res.IPv6.IsValid() {
				t.Errorf("Result = %+v, want no address", res)
			}
			if n := fake.requests(); n != 0 {
				t.Errorf("IMDS got %d requests, want 0", n)
			}
			step := findStep(t, trace, SourceOverrideFile)
			if step.Outcome != OutcomeRejected {
				t.Errorf("override-file outcome = %q, want %q", step.Outcome, OutcomeRejected)
			}
			assertOutcomes(t, trace, map[Source]string{
				SourceIMDSPublic: OutcomeSkipped,
				SourceIMDSLocal:  OutcomeSkipped,
				SourceIMDSIPv6:   OutcomeSkipped,
			})
		})
	}
}

// TestResolve_OverridePathFailures covers override paths that exist but
// cannot be read as a file. Each is an error naming the path and the fix,
// and never falls through to metadata.
func TestResolve_OverridePathFailures(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, resolver *Resolver, path string)
		wantErr func(path string) []string
	}{
		{
			name: "directory",
			setup: func(t *testing.T, resolver *Resolver, path string) {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: func(path string) []string {
				return []string{"override file " + path + " is a directory; replace it with a file that contains one IPv4 or IPv6 address"}
			},
		},
		{
			// Root reads any file whatever its mode, and the tests run as
			// root, so the open function is replaced with one that fails
			// like os.Open on a file without read permission.
			name: "unreadable",
			setup: func(t *testing.T, resolver *Resolver, path string) {
				writeOverride(t, resolver, "203.0.113.7\n")
				resolver.openOverride = func(name string) (io.ReadCloser, error) {
					return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
				}
			},
			wantErr: func(path string) []string {
				return []string{
					"override file " + path + ": open " + path + ": permission denied",
					"make it readable by the user that runs the Nomad client, or delete it to use instance metadata",
				}
			},
		},
		{
			name: "read error",
			setup: func(t *testing.T, resolver *Resolver, path string) {
				writeOverride(t, resolver, "203.0.113.7\n")
				resolver.openOverride = func(name string) (io.ReadCloser, error) {
					return io.NopCloser(failingReader{err: syscall.EIO}), nil
				}
			},
			wantErr: func(path string) []string {
				return []string{"override file " + path + ": reading failed: input/output error"}
			},
		},
		{
			name: "dangling symbolic link",
			setup: func(t *testing.T, resolver *Resolver, path string) {
				target := filepath.Join(filepath.Dir(path), "missing-target")
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: func(path string) []string {
				target := filepath.Join(filepath.Dir(path), "missing-target")
				return []string{
					"override file " + path + " is a symbolic link to " + target + ", which does not exist",
					"point the link at a file that contains one IPv4 or IPv6 address, or delete the link to use instance metadata",
				}
			},
		},
		{
			// Opening a named pipe would block the resolution until a
			// writer appeared.
			name: "named pipe",
			setup: func(t *testing.T, resolver *Resolver, path string) {
				if err := syscall.Mkfifo(path, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: func(path string) []string {
				return []string{"override file " + path + " is not a regular file (mode prw-r--r--); replace it with a file that contains one IPv4 or IPv6 address"}
			},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeIMDS(t)
			fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
			resolver := newTestResolver(t, fake, nil)
			path := resolver.cfg.OverrideFile
			tc.setup(t, resolver, path)

			res, trace, err := resolver.ResolveTrace(context.Background())

			assertErrorContains(t, err, tc.wantErr(path)...)
			if res.IPv4.IsValid() || res.IPv6.IsValid() {
				t.Errorf("Result = %+v, want no address", res)
			}
			if n := fake.requests(); n != 0 {
				t.Errorf("IMDS got %d requests, want 0", n)
			}
			step := findStep(t, trace, SourceOverrideFile)
			if step.Outcome != OutcomeFailed {
				t.Errorf("override-file outcome = %q, want %q", step.Outcome, OutcomeFailed)
			}
			public := findStep(t, trace, SourceIMDSPublic)
			if !strings.Contains(public.Reason, "never falls through to metadata") {
				t.Errorf("imds-public reason = %q, want it to say that an invalid override never falls through", public.Reason)
			}
		})
	}
}

func TestResolve_OverrideMissingFallsThrough(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	got, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
	step := findStep(t, trace, SourceOverrideFile)
	if step.Outcome != OutcomeNotFound {
		t.Errorf("override-file outcome = %q, want %q", step.Outcome, OutcomeNotFound)
	}
	if step.Origin != resolver.cfg.OverrideFile {
		t.Errorf("override-file origin = %q, want %q", step.Origin, resolver.cfg.OverrideFile)
	}
}

func TestResolve_OverrideThroughSymbolicLink(t *testing.T) {
	fake := newFakeIMDS(t)
	resolver := newTestResolver(t, fake, nil)
	path := resolver.cfg.OverrideFile
	target := filepath.Join(filepath.Dir(path), "address")
	if err := os.WriteFile(target, []byte("203.0.113.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "203.0.113.7", SourceOverrideFile, path)
	if n := fake.requests(); n != 0 {
		t.Errorf("IMDS got %d requests, want 0", n)
	}
}

// Deleting the target of a symbolic link turns a working override into an
// error, not into a fall-through to metadata.
func TestCurrent_OverrideLinkTargetRemovedIsError(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	path := resolver.cfg.OverrideFile
	target := filepath.Join(filepath.Dir(path), "address")
	if err := os.WriteFile(target, []byte("203.0.113.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := resolver.Current(context.Background(), time.Hour); err != nil {
		t.Fatalf("first Current: %v", err)
	}

	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	_, err := resolver.Current(context.Background(), time.Hour)

	assertErrorContains(t, err, "override file "+path+" is a symbolic link to "+target+", which does not exist")
	if n := fake.requests(); n != 0 {
		t.Errorf("IMDS got %d requests, want 0", n)
	}
}

// A symbolic link whose target disappears between the stat and the open is
// still an error, because the path still exists.
func TestResolve_OverrideTargetRemovedDuringReadIsError(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	path := resolver.cfg.OverrideFile
	target := filepath.Join(filepath.Dir(path), "address")
	if err := os.WriteFile(target, []byte("203.0.113.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	resolver.openOverride = func(name string) (io.ReadCloser, error) {
		if err := os.Remove(target); err != nil {
			t.Errorf("removing the target: %v", err)
		}
		return os.Open(name)
	}

	_, err := resolver.Resolve(context.Background())

	assertErrorContains(t, err, "override file "+path+" is a symbolic link to "+target+", which does not exist")
	if n := fake.requests(); n != 0 {
		t.Errorf("IMDS got %d requests, want 0", n)
	}
}

// A plain file deleted between the stat and the open is missing, so the
// resolution falls through to metadata.
func TestResolve_OverrideRemovedDuringReadFallsThrough(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	writeOverride(t, resolver, "203.0.113.7\n")
	resolver.openOverride = func(name string) (io.ReadCloser, error) {
		if err := os.Remove(name); err != nil {
			t.Errorf("removing the file: %v", err)
		}
		return os.Open(name)
	}

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	assertResult(t, got, "198.51.100.1", SourceIMDSPublic, fake.URL()+"/latest/meta-data/public-ipv4")
}

func TestResolve_OverrideWorldWritableWarns(t *testing.T) {
	fake := newFakeIMDS(t)
	var logs syncBuffer
	resolver := newTestResolver(t, fake, logTo(&logs))
	path := resolver.cfg.OverrideFile
	writeOverride(t, resolver, "203.0.113.7\n")
	// Chmod, because the umask would clear the write bit of os.WriteFile.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}

	got, err := resolver.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if _, err := resolver.Resolve(context.Background()); err != nil {
		t.Fatalf("second Resolve: %v", err)
	}

	assertResult(t, got, "203.0.113.7", SourceOverrideFile, path)
	assertLogLine(t, &logs, "[WARN]", "the override file is writable by every user",
		"path="+path, "mode=-rw-rw-rw-", `fix="chmod o-w `+path+`"`)
	if n := strings.Count(logs.String(), "writable by every user"); n != 1 {
		t.Errorf("logged the warning %d times in two resolutions, want once:\n%s", n, logs.String())
	}
}

func TestResolve_OverrideNotWorldWritableDoesNotWarn(t *testing.T) {
	fake := newFakeIMDS(t)
	var logs syncBuffer
	resolver := newTestResolver(t, fake, logTo(&logs))
	writeOverride(t, resolver, "203.0.113.7\n")
	if err := os.Chmod(resolver.cfg.OverrideFile, 0o664); err != nil {
		t.Fatal(err)
	}

	if _, err := resolver.Resolve(context.Background()); err != nil {
		t.Fatalf("Resolve: %v", err)
	}

	if strings.Contains(logs.String(), "[WARN]") {
		t.Errorf("logged a warning for mode 0664, want none:\n%s", logs.String())
	}
}

func TestResolve_OverrideIPv6(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)
	path := resolver.cfg.OverrideFile
	writeOverride(t, resolver, "2001:db8::7\n")

	got, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	assertResult(t, got, "2001:db8::7", SourceOverrideFile, path)
	if got.IPv6Origin != path {
		t.Errorf("IPv6Origin = %q, want %q", got.IPv6Origin, path)
	}
	if got.IPv4.IsValid() || got.IPv4Source != "" {
		t.Errorf("IPv4 = %s from %q, want none, because the override file sets only its own family", got.IPv4, got.IPv4Source)
	}
	if n := fake.requests(); n != 0 {
		t.Errorf("IMDS got %d requests, want 0", n)
	}
	step := findStep(t, trace, SourceOverrideFile)
	if step.Family != FamilyIPv6 {
		t.Errorf("override-file family = %q, want %q", step.Family, FamilyIPv6)
	}
}

type failingReader struct {
	err error
}

func (r failingReader) Read([]byte) (int, error) {
	return 0, r.err
}
