package driver

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/pkg/sftp"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// testUserImage is testImage with /etc/passwd, /etc/group and USER builder
// (UID 1000, GID 1000, also in the group ci, GID 2000).
const testUserImage = "nomad-driver-sshrerun/busybox-user:local"

// An image whose USER is a name runs its job, its SSH sessions, its SFTP
// sessions and its exec sessions as that user, with the user's HOME.
func TestDriver_NamedUserFromImage(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testUserImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "id -u > /tmp/job-uid; echo $HOME > /tmp/job-home; while :; do sleep 0.1; done"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, task)

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, status := runSSH(t, c, "id -u; id -g; id -G; echo $HOME")
	require.Equal(t, 0, status)
	require.Equal(t, "1000\n1000\n1000 2000\n/home/builder\n", out)

	// a terminal session runs as the user, who owns the terminal
	session, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, session.RequestPty("xterm", 24, 80, ssh.TerminalModes{}))
	ttyOut, err := session.CombinedOutput("id -u; stat -c %u $(tty)")
	require.NoError(t, err)
	require.Equal(t, "1000\r\n1000\r\n", string(ttyOut))

	// the job started before the first session, as the same user
	require.Eventually(t, func() bool {
		out, _ := runSSH(t, c, "cat /tmp/job-uid /tmp/job-home")
		return out == "1000\n/home/builder\n"
	}, 10*time.Second, 50*time.Millisecond, "the job did not write its uid and home")

	// a file that SFTP writes belongs to the user
	client, err := sftp.NewClient(c)
	require.NoError(t, err)
	file, err := client.Create("/tmp/uploaded")
	require.NoError(t, err)
	_, err = file.Write([]byte("from sftp\n"))
	require.NoError(t, err)
	require.NoError(t, file.Close())
	require.NoError(t, client.Close())
	out, _ = runSSH(t, c, "stat -c %u:%g /tmp/uploaded; cat /tmp/uploaded")
	require.Equal(t, "1000:1000\nfrom sftp\n", out)

	// SFTP cannot write where the user cannot
	client, err = sftp.NewClient(c)
	require.NoError(t, err)
	_, err = client.Create("/root/denied")
	require.ErrorIs(t, err, os.ErrPermission)
	require.NoError(t, client.Close())

	// nomad alloc exec runs as the user too
	result, err := d.ExecTask(task.ID, []string{"id", "-un"}, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "builder\n", string(result.Stdout))
}

// The task's user wins over the image's USER, and may name a group.
func TestDriver_NamedUserAndGroupFromTask(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testUserImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		Env:     map[string]string{"HOME": "/work"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	task.User = "builder:ci"
	d.startTask(t, task)

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, status := runSSH(t, c, "id -u; id -g; id -G; echo $HOME")
	require.Equal(t, 0, status)
	// as with Docker, the named group is the only one, and the task's HOME
	// stays
	require.Equal(t, "1000\n2000\n2000\n/work\n", out)

	// nomad alloc exec gets the same groups from the engine
	result, err := d.ExecTask(task.ID, []string{"id", "-G"}, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "2000\n", string(result.Stdout))
}

// A user or group that the image does not define fails the start with a
// message that names it, and leaves no container. The check runs before
// the container starts, so no ssh command is ever reported for it.
func TestDriver_NamedUserMissingFromImage(t *testing.T) {
	cases := []struct {
		image, user, want string
	}{
		{testImage, "circleci", `the container user "circleci" names the user "circleci", but the image has no /etc/passwd`},
		{testUserImage, "circleci", `the container user "circleci" names the user "circleci", which the image's /etc/passwd does not define`},
		{testUserImage, "builder:wheel", `the container user "builder:wheel" names the group "wheel", which the image's /etc/group does not define`},
	}
	d := newTestDriver(t, nil)
	for _, tc := range cases {
		task := newTask(t, 0, &TaskConfig{Image: tc.image, Command: "/bin/true"})
		task.User = tc.user
		d.mkAllocDir(t, task, false)

		_, _, err := d.StartTask(task)
		require.ErrorContains(t, err, tc.want)
		ids, err := projectContainers(d.docker, "nomad-driver-sshrerun.alloc_id="+task.AllocID)
		require.NoError(t, err)
		require.Empty(t, ids, "the container of the failed start was left")
	}
}

func TestAccountFileHas(t *testing.T) {
	passwd := strings.Join([]string{
		"root:x:0:0:root:/root:/bin/sh",
		"# builder:x:1000:1000::/home/builder:/bin/sh",
		"  builder:x:1000:1000::/home/builder:/bin/sh  ",
		"nocolons",
		"short:x:1001:1001:/home/short",
		"baduid:x:abc:1000::/home/baduid:/bin/sh",
		"badgid:x:1002:abc::/home/badgid:/bin/sh",
		"+nis:x:1003:1003::/home/nis:/bin/sh",
		"long:x:1004:1004:" + strings.Repeat("g", 100000) + ":/home/long:/bin/sh",
		"last:x:1005:1005::/home/last:/bin/sh", // no newline at the end
	}, "\n")
	for name, want := range map[string]bool{
		"root": true, "builder": true, "long": true, "last": true,
		"build": false, "x": false, "": false, "nocolons": false, "short": false,
		"baduid": false, "badgid": false, "+nis": false,
	} {
		found, err := passwdFile.has(strings.NewReader(passwd), name)
		require.NoError(t, err)
		require.Equal(t, want, found, name)
	}

	group := "ci:x:2000:builder\nshort:x:2001\nbad:x:abc:\n"
	for name, want := range map[string]bool{"ci": true, "short": false, "bad": false} {
		found, err := groupFile.has(strings.NewReader(group), name)
		require.NoError(t, err)
		require.Equal(t, want, found, name)
	}
}

// createdUserContainer creates, without starting, a container of the user
// image with the project's labels, replaces files in it with the given
// tar entries, and removes it when the test ends.
func createdUserContainer(t *testing.T, docker *client.Client, entries []tar.Header, contents map[string]string) string {
	t.Helper()
	ctx := context.Background()
	allocID := uuid.Generate()
	testAllocIDs.add(allocID)
	created, err := docker.ContainerCreate(ctx, &container.Config{
		Image:  testUserImage,
		Labels: map[string]string{spec.LabelManaged: "true", spec.LabelAllocID: allocID},
	}, nil, nil, nil, "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = docker.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}) })

	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for _, header := range entries {
		content := contents[header.Name]
		header.Size = int64(len(content))
		header.Mode = 0o644
		require.NoError(t, tw.WriteHeader(&header))
		_, err := tw.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, docker.CopyToContainer(ctx, created.ID, "/", &archive, container.CopyToContainerOptions{}))
	return created.ID
}

// The check follows symbolic links to the image's real /etc/passwd, also
// through a linked folder, and leaves a file that it cannot read with
// certainty to the init.
func TestAccountFileHas_Links(t *testing.T) {
	d := newTestDriver(t, nil)
	ctx := context.Background()
	passwd := "root:x:0:0:root:/root:/bin/sh\nlinked:x:1200:1200::/home/linked:/bin/sh\n"

	// /etc/passwd -> accounts/passwd, /etc/accounts -> /data/accounts, and
	// /data/accounts/passwd -> ../store/passwd, which is /data/store/passwd
	id := createdUserContainer(t, d.docker, []tar.Header{
		{Name: "data/store/passwd", Typeflag: tar.TypeReg},
		{Name: "data/accounts/passwd", Typeflag: tar.TypeSymlink, Linkname: "../store/passwd"},
		{Name: "etc/accounts", Typeflag: tar.TypeSymlink, Linkname: "/data/accounts"},
		{Name: "etc/passwd", Typeflag: tar.TypeSymlink, Linkname: "accounts/passwd"},
	}, map[string]string{"data/store/passwd": passwd})
	found, err := accountFileHas(ctx, d.docker, id, passwdFile, "linked")
	require.NoError(t, err)
	require.True(t, found)
	found, err = accountFileHas(ctx, d.docker, id, passwdFile, "builder")
	require.NoError(t, err)
	require.False(t, found, "builder is in the image's old file, not in the one the links lead to")
	require.ErrorContains(t, requireAccount(ctx, d.docker, id, passwdFile, "builder", "builder", hclog.NewNullLogger()),
		`the container user "builder" names the user "builder", which the image's /etc/passwd does not define`)

	// a loop of links, which the engine refuses to resolve, is left to the
	// init
	id = createdUserContainer(t, d.docker, []tar.Header{
		{Name: "etc/passwd", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	}, nil)
	_, err = accountFileHas(ctx, d.docker, id, passwdFile, "linked")
	require.Error(t, err)
	require.NoError(t, requireAccount(ctx, d.docker, id, passwdFile, "missing", "missing", hclog.NewNullLogger()))
}
