package driver

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
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
// message that names it, before the task reports an ssh command, and
// leaves no container.
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

func TestHasAccount(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\n# a comment\nbuilder:x:1000:1000::/home/builder:/bin/sh\n"
	for name, want := range map[string]bool{"root": true, "builder": true, "build": false, "x": false, "": false} {
		found, err := hasAccount(strings.NewReader(passwd), name)
		require.NoError(t, err)
		require.Equal(t, want, found, name)
	}
}
