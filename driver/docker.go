package driver

import (
	"fmt"

	"github.com/docker/docker/client"
)

// newDockerClient returns a client for endpoint that negotiates the API
// version, so that engines as old as 20.10 work. It has no request timeout:
// callers pass contexts, and ContainerWait must be able to block for the
// life of a task.
func newDockerClient(endpoint string) (*client.Client, error) {
	c, err := client.NewClientWithOpts(
		client.WithHost(endpoint),
		client.WithAPIVersionNegotiation(),
	)
	if err != nil {
		return nil, fmt.Errorf("failed to create a Docker client for %q: %w", endpoint, err)
	}
	return c, nil
}
