package sshserver

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// runAsPattern matches the user forms of Docker's USER and of Nomad's task
// user: a name or UID, optionally followed by ":" and a group name or GID.
var runAsPattern = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*(:[A-Za-z0-9._][A-Za-z0-9._-]*)?$`)

// identity is the user that the job and the SSH sessions run as, resolved
// from the container's /etc/passwd and /etc/group.
type identity struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
	home   string
}

// credential returns the credential that starts a process as the identity.
// A nil identity returns nil, and the process keeps the init's user.
func (id *identity) credential() *syscall.Credential {
	if id == nil {
		return nil
	}
	return &syscall.Credential{Uid: id.uid, Gid: id.gid, Groups: id.groups}
}

// resolveRunAs looks spec up in the container's user and group files. The
// user must exist there, because Docker fails the same way for a named
// USER that the image does not define.
func resolveRunAs(spec string) (*identity, error) {
	name, group, hasGroup := strings.Cut(spec, ":")

	u, err := lookupUser(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("the container user %q has the UID %q in /etc/passwd, which is not a number; fix the image's /etc/passwd", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("the container user %q has the GID %q in /etc/passwd, which is not a number; fix the image's /etc/passwd", name, u.Gid)
	}

	id := &identity{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	if hasGroup {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		primary, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("the container group %q has the GID %q in /etc/group, which is not a number; fix the image's /etc/group", group, g.Gid)
		}
		// as Docker does, a group given explicitly is the only group
		id.gid = uint32(primary)
		id.groups = []uint32{id.gid}
		return id, nil
	}

	// the supplementary groups come from /etc/group; an image without one
	// leaves the user in its primary group only
	groupIDs, err := u.GroupIds()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("failed to read the groups of the container user %q from /etc/group: %w", name, err)
	}
	id.groups = append(id.groups, id.gid)
	for _, text := range groupIDs {
		value, err := strconv.ParseUint(text, 10, 32)
		if err == nil && uint32(value) != id.gid {
			id.groups = append(id.groups, uint32(value))
		}
	}
	return id, nil
}

// lookupUser finds name, or a UID, in /etc/passwd.
func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err == nil {
		return u, nil
	}
	if _, numeric := strconv.ParseUint(name, 10, 32); numeric == nil {
		if byID, idErr := user.LookupId(name); idErr == nil {
			return byID, nil
		}
		// a UID without an entry still runs, as Docker runs it
		return &user.User{Uid: name, Gid: name, Username: name, HomeDir: "/"}, nil
	}
	return nil, fmt.Errorf("the container user %q is not in the container's /etc/passwd: %w; add the user to the image, or set the task's user to a numeric UID", name, err)
}

// lookupGroup finds name, or a GID, in /etc/group.
func lookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if err == nil {
		return g, nil
	}
	if _, numeric := strconv.ParseUint(name, 10, 32); numeric == nil {
		return &user.Group{Gid: name, Name: name}, nil
	}
	return nil, fmt.Errorf("the container group %q is not in the container's /etc/group: %w; add the group to the image, or use a numeric GID", name, err)
}
