package driver

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// work_dir is where the job, SSH sessions and exec sessions start. The init
// creates it when the image lacks it, owned by the job's user.
func TestDriver_WorkDirCreatedForUser(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testUserImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "pwd > /tmp/job-pwd; touch made-by-job; while :; do sleep 0.1; done"},
		WorkDir: "/tmp/ci/project",
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	d.startTask(t, task)

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	require.Eventually(t, func() bool {
		out, _ := runSSH(t, c, "cat /tmp/job-pwd")
		return out == "/tmp/ci/project\n"
	}, 10*time.Second, 50*time.Millisecond, "the job did not write its working directory")

	out, status := runSSH(t, c, "pwd; stat -c '%n %u:%g %a' /tmp /tmp/ci /tmp/ci/project made-by-job")
	require.Equal(t, 0, status, out)
	require.Equal(t, "/tmp/ci/project\n"+
		"/tmp 0:0 1777\n"+
		"/tmp/ci 1000:1000 755\n"+
		"/tmp/ci/project 1000:1000 755\n"+
		"made-by-job 1000:1000 644\n", out)

	result, err := d.ExecTask(task.ID, []string{"pwd"}, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "/tmp/ci/project\n", string(result.Stdout))
}

// A work_dir that cannot be created fails the job with exit code 126 and a
// message that names the directory. The hold follows, and its SSH and exec
// sessions start in / and the container's directory instead.
func TestDriver_WorkDirUnusable(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	port := freeSSHPort(t)
	task := newTask(t, port, &TaskConfig{
		Image:   testImage,
		Command: "/bin/true",
		WorkDir: "/bin/sh/project",
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}, WaitForConnection: "1m"},
	})
	d.startTaskWithLogs(t, task)

	waitForLog(t, task, "stderr", func(s string) bool {
		return strings.Contains(s, `working directory \"/bin/sh/project\" could not be created: /bin/sh exists and is not a directory`) &&
			strings.Contains(s, "set work_dir in the task config")
	})

	c := dialSSH(t, port, "root", key)
	defer c.Close()
	out, status := runSSH(t, c, "pwd; echo hello")
	require.Equal(t, 0, status, out)
	require.Equal(t, "/\nhello\n", out)

	result, err := d.ExecTask(task.ID, []string{"pwd"}, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "/\n", string(result.Stdout))

	// the job's exit code arrives when the hold ends
	require.NoError(t, d.StopTask(task.ID, 10*time.Second, "SIGTERM"))
	result2 := d.waitExit(t, task.ID, 30*time.Second)
	require.Equal(t, 126, result2.ExitCode)
}

// shm_size sets the size of the container's /dev/shm.
func TestDriver_ShmSize(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		ShmSize: "256m",
	})
	d.startTask(t, task)

	result, err := d.ExecTask(task.ID, []string{"/bin/sh", "-c", "df -k /dev/shm | tail -n 1 | awk '{print $2}'"}, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "262144\n", string(result.Stdout))
}

// ulimit sets the container's resource limits.
func TestDriver_Ulimit(t *testing.T) {
	d := newTestDriver(t, nil)
	task := newTask(t, freeSSHPort(t), &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do sleep 0.1; done"},
		Ulimit:  map[string]string{"nofile": "4096:8192"},
	})
	d.startTask(t, task)

	result, err := d.ExecTask(task.ID, []string{"/bin/sh", "-c", "ulimit -Sn; ulimit -Hn"}, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "4096\n8192\n", string(result.Stdout))
}
