package driver

import (
	"bufio"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/stretchr/testify/require"

	spec "github.com/sshrerun/nomad-driver-sshrerun/driver/container"
)

// portsTask returns a task config with the given port mappings.
func portsTask(ports ...structs.AllocatedPortMapping) *drivers.TaskConfig {
	allocated := structs.AllocatedPorts(ports)
	return &drivers.TaskConfig{Resources: &drivers.Resources{Ports: &allocated}}
}

func TestTaskPorts_Resolves(t *testing.T) {
	cfg := portsTask(
		structs.AllocatedPortMapping{Label: "ssh", Value: 64535, HostIP: "127.0.0.1"},
		structs.AllocatedPortMapping{Label: "http", Value: 64600, To: 8080, HostIP: "127.0.0.1"},
		structs.AllocatedPortMapping{Label: "same", Value: 64601, HostIP: "127.0.0.1"},
		structs.AllocatedPortMapping{Label: "host", Value: 64602, To: -1, HostIP: "127.0.0.1"},
	)
	ports, err := taskPorts(cfg, &TaskConfig{Ports: []string{"http", "same", "host"}, SSH: &SSHConfig{Port: "ssh"}})
	require.NoError(t, err)
	// without "to", and with to = -1, the container port is the host port
	require.Equal(t, []spec.Port{
		{Label: "http", HostIP: "127.0.0.1", HostPort: 64600, ContainerPort: 8080},
		{Label: "same", HostIP: "127.0.0.1", HostPort: 64601, ContainerPort: 64601},
		{Label: "host", HostIP: "127.0.0.1", HostPort: 64602, ContainerPort: 64602},
	}, ports)

	// a task without an ssh block may list every label
	ports, err = taskPorts(cfg, &TaskConfig{Ports: []string{"ssh"}})
	require.NoError(t, err)
	require.Equal(t, []spec.Port{{Label: "ssh", HostIP: "127.0.0.1", HostPort: 64535, ContainerPort: 64535}}, ports)
}

func TestTaskPorts_Invalid(t *testing.T) {
	cfg := portsTask(
		structs.AllocatedPortMapping{Label: "ssh", Value: 64535},
		structs.AllocatedPortMapping{Label: "http", Value: 64600},
		structs.AllocatedPortMapping{Label: "bad", Value: 64601, To: -2},
	)
	cases := []struct {
		ports []string
		want  string
	}{
		{[]string{""}, "task config ports has an empty label"},
		{[]string{"http", "http"}, `task config ports lists "http" twice`},
		{[]string{"ssh"}, `task config ports lists "ssh", the port label of the ssh block`},
		{[]string{"web"}, `task config ports lists "web", which is not a port label of this task (labels: [ssh, http, bad])`},
		{[]string{"bad"}, `port label "bad" has to = -2`},
	}
	for _, tc := range cases {
		_, err := taskPorts(cfg, &TaskConfig{Ports: tc.ports, SSH: &SSHConfig{Port: "ssh"}})
		require.ErrorContains(t, err, tc.want, tc.ports)
	}
}

// A port of the ports option reaches the job's server inside the
// container, next to the SSH port.
func TestDriver_TaskPortPublished(t *testing.T) {
	d := newTestDriver(t, nil)
	key := newUserKey(t)
	sshPort := freeSSHPort(t)
	httpPort := freeSSHPort(t)
	task := newTask(t, sshPort, &TaskConfig{
		Image:   testImage,
		Command: "/bin/sh",
		Args:    []string{"-c", "while :; do echo hello-from-job | nc -l -p 8080; done"},
		Ports:   []string{"http"},
		SSH:     &SSHConfig{Port: "ssh", AuthorizedKeys: []string{key.authorizedKey}},
	})
	*task.Resources.Ports = append(*task.Resources.Ports, structs.AllocatedPortMapping{Label: "http", Value: httpPort, To: 8080, HostIP: "127.0.0.1"})

	_, network := d.startTask(t, task)
	require.Equal(t, map[string]int{"ssh": 2222, "http": 8080}, network.PortMap)

	address := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", address, time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		return err == nil && line == "hello-from-job\n"
	}, 20*time.Second, 100*time.Millisecond, "the job's server did not answer on host port %d", httpPort)

	dialSSH(t, sshPort, "root", key).Close()
}
