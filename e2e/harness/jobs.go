package harness

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/hashicorp/nomad/api"
)

// ContainerLabelManaged and ContainerLabelAllocID are the labels that the
// driver puts on its containers.
const (
	ContainerLabelManaged = "nomad-driver-sshrerun.managed"
	ContainerLabelAllocID = "nomad-driver-sshrerun.alloc_id"
)

// ReadyEvent is the driver event whose message is the ssh command.
type ReadyEvent struct {
	Message string
	Details map[string]string
}

// RunJob parses the HCL2 job file at path with the given variables file
// content, registers it and returns the job's ID.
func (a *Agent) RunJob(path, variables string) (string, error) {
	hcl, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("failed to read job file: %w", err)
	}
	return a.RunJobHCL(string(hcl), variables)
}

// RunJobHCL parses and registers a job given as HCL2 text.
func (a *Agent) RunJobHCL(hcl, variables string) (string, error) {
	job, err := a.Client.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: hcl, Variables: variables, Canonicalize: true})
	if err != nil {
		return "", fmt.Errorf("failed to parse job: %w", err)
	}
	if _, _, err := a.Client.Jobs().Register(job, nil); err != nil {
		return "", fmt.Errorf("failed to register job %s: %w", *job.ID, err)
	}
	return *job.ID, nil
}

// WaitForReady polls the job's allocations until task taskName has a
// driver event with details, and returns the allocation ID and the event.
// It fails early when the task fails.
func (a *Agent) WaitForReady(ctx context.Context, jobID, taskName string) (string, *ReadyEvent, error) {
	var last string
	for {
		stubs, _, err := a.Client.Jobs().Allocations(jobID, false, nil)
		if err != nil {
			last = err.Error()
		}
		for _, stub := range stubs {
			state := stub.TaskStates[taskName]
			if state == nil {
				last = "task " + taskName + " has no state yet"
				continue
			}
			for _, event := range state.Events {
				if event.Type == api.TaskDriverMessage && event.Details["ssh_port"] != "" {
					return stub.ID, &ReadyEvent{Message: event.DisplayMessage, Details: event.Details}, nil
				}
				if event.Type == api.TaskDriverFailure || event.Type == api.TaskSetupFailure {
					return stub.ID, nil, fmt.Errorf("task %s failed: %s", taskName, event.DisplayMessage)
				}
			}
			last = fmt.Sprintf("task %s is %s with events [%s]", taskName, state.State, eventSummary(state.Events))
		}

		select {
		case <-ctx.Done():
			return "", nil, fmt.Errorf("no ssh event for job %s: %s", jobID, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func eventSummary(events []*api.TaskEvent) string {
	parts := make([]string, 0, len(events))
	for _, event := range events {
		parts = append(parts, event.Type+": "+event.DisplayMessage)
	}
	return strings.Join(parts, "; ")
}

// WaitForTaskState polls until the task in allocID reaches state ("dead",
// "running") and returns it.
func (a *Agent) WaitForTaskState(ctx context.Context, allocID, taskName, state string) (*api.TaskState, error) {
	var last string
	for {
		alloc, _, err := a.Client.Allocations().Info(allocID, nil)
		if err != nil {
			last = err.Error()
		} else if ts := alloc.TaskStates[taskName]; ts != nil {
			if ts.State == state {
				return ts, nil
			}
			last = ts.State
		}

		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("task %s of alloc %s did not reach %s: last %s", taskName, allocID, state, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// StopJob deregisters the job with purge.
func (a *Agent) StopJob(jobID string) error {
	if _, _, err := a.Client.Jobs().Deregister(jobID, true, nil); err != nil {
		return fmt.Errorf("failed to stop job %s: %w", jobID, err)
	}
	return nil
}

// Containers returns the IDs of the driver's containers for allocID, or for
// every allocation when allocID is empty, running or not.
func Containers(ctx context.Context, docker *client.Client, allocID string) ([]string, error) {
	args := filters.NewArgs(filters.Arg("label", ContainerLabelManaged+"=true"))
	if allocID != "" {
		args.Add("label", ContainerLabelAllocID+"="+allocID)
	}
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("failed to list containers: %w", err)
	}
	ids := make([]string, 0, len(list))
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	return ids, nil
}

// WaitForNoContainers polls until the driver has no container for allocID.
func WaitForNoContainers(ctx context.Context, docker *client.Client, allocID string) error {
	for {
		ids, err := Containers(ctx, docker, allocID)
		if err == nil && len(ids) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containers of alloc %q still exist: %v (%v)", allocID, ids, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// RemoveContainers force-removes the driver's containers for allocID, by
// their IDs. Tests call it in cleanup so that a failed test leaks nothing.
func RemoveContainers(ctx context.Context, docker *client.Client, allocID string) error {
	ids, err := Containers(ctx, docker, allocID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("failed to remove container %s: %w", id, err)
		}
	}
	return nil
}

// NewDockerClient returns a client for the local engine.
func NewDockerClient() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// WaitForEvent polls until a task event's message contains text.
func (a *Agent) WaitForEvent(ctx context.Context, allocID, taskName, text string) (*api.TaskEvent, error) {
	for {
		alloc, _, err := a.Client.Allocations().Info(allocID, nil)
		if err == nil && alloc.TaskStates[taskName] != nil {
			for _, event := range alloc.TaskStates[taskName].Events {
				if strings.Contains(event.DisplayMessage, text) {
					return event, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no event of task %s in alloc %s contains %q", taskName, allocID, text)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
