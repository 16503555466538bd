package sshserver

import (
	"strings"
	"testing"
)

// These tests read the host's /etc/passwd, where root is UID 0 with home
// /root, as in a container.
func TestResolveRunAs_Root(t *testing.T) {
	id, err := resolveRunAs("root")
	if err != nil {
		t.Fatal(err)
	}
	if id.uid != 0 || id.gid != 0 || id.home != "/root" {
		t.Fatalf("root resolved to uid %d, gid %d, home %q", id.uid, id.gid, id.home)
	}
	if credential := id.credential(); credential.Uid != 0 || len(credential.Groups) == 0 || credential.Groups[0] != 0 {
		t.Fatalf("credential of root = %+v", credential)
	}
}

func TestResolveRunAs_NumericWithoutEntry(t *testing.T) {
	id, err := resolveRunAs("4242:4343")
	if err != nil {
		t.Fatal(err)
	}
	if id.uid != 4242 || id.gid != 4343 || id.home != "/" {
		t.Fatalf("4242:4343 resolved to uid %d, gid %d, home %q", id.uid, id.gid, id.home)
	}
}

func TestResolveRunAs_UnknownNames(t *testing.T) {
	cases := map[string]string{
		"no-such-user-sshrerun":       `the container user "no-such-user-sshrerun" is not in the container's /etc/passwd`,
		"root:no-such-group-sshrerun": `the container group "no-such-group-sshrerun" is not in the container's /etc/group`,
	}
	for spec, want := range cases {
		_, err := resolveRunAs(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("resolveRunAs(%q) error = %v, want one that contains %q", spec, err, want)
		}
	}
}

func TestNilIdentityKeepsTheInitsUser(t *testing.T) {
	var id *identity
	if credential := id.credential(); credential != nil {
		t.Fatalf("a nil identity returned the credential %+v", credential)
	}
}
