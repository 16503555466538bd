package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"golang.org/x/crypto/bcrypt"
)

// RegistryBinary is what `make tools` builds.
func RegistryBinary() string { return filepath.Join(RepoRoot(), ".cache", "tools", "registry") }

// Registry is a distribution registry on 127.0.0.1 that requires basic
// authentication. The Docker engine treats registries on 127.0.0.0/8 as
// insecure, so it speaks plain HTTP to it.
type Registry struct {
	*Process
	Address  string // host:port, the prefix of image references
	Username string
	Password string
}

const registryConfig = `version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
auth:
  htpasswd:
    realm: nomad-driver-sshrerun-test
    path: %s
`

// StartRegistry starts a registry with one user in dir.
func StartRegistry(ctx context.Context, dir, username, password string) (*Registry, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	address := "127.0.0.1:" + strconv.Itoa(port)

	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("failed to hash the registry password: %w", err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(username+":"+string(hash)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the htpasswd file: %w", err)
	}
	configPath := filepath.Join(dir, "registry.yml")
	config := fmt.Sprintf(registryConfig, filepath.Join(dir, "storage"), address, htpasswd)
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the registry config: %w", err)
	}

	// no trace exporter: it would try to send traces to a collector
	env := []string{"OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true"}
	proc, err := startProcess("registry", filepath.Join(dir, "registry.log"), env, RegistryBinary(), "serve", configPath)
	if err != nil {
		return nil, err
	}

	registry := &Registry{Process: proc, Address: address, Username: username, Password: password}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := registry.waitReady(waitCtx); err != nil {
		_ = proc.Stop(5 * time.Second)
		return nil, fmt.Errorf("the registry did not start: %w; its log %s ends with:\n%s", err, proc.LogPath, logTail(proc.LogPath, 20))
	}
	return registry, nil
}

// waitReady polls /v2/ until it returns 401 Unauthorized, as it does once it
// serves requests.
func (r *Registry) waitReady(ctx context.Context) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Address+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PushImage copies the local image source into the registry as target
// (host:port/name:tag), then removes the local target tag, so that the
// next use of target has to pull it.
func (r *Registry) PushImage(ctx context.Context, docker *client.Client, source, target string) error {
	if err := docker.ImageTag(ctx, source, target); err != nil {
		return fmt.Errorf("failed to tag %s as %s: %w", source, target, err)
	}
	auth, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: r.Username, Password: r.Password, ServerAddress: r.Address})
	if err != nil {
		return err
	}
	body, err := docker.ImagePush(ctx, target, image.PushOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("failed to push %s: %w", target, err)
	}
	defer body.Close()

	decoder := json.NewDecoder(body)
	for {
		var msg jsonmessage.JSONMessage
		if err := decoder.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("failed to read the push of %s: %w", target, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("failed to push %s: %s", target, msg.Error.Message)
		}
	}

	if _, err := docker.ImageRemove(ctx, target, image.RemoveOptions{}); err != nil {
		return fmt.Errorf("failed to remove the local tag %s: %w", target, err)
	}
	return nil
}
