package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// MetadataMock is AWS's ec2-metadata-mock, serving on 127.0.0.1.
type MetadataMock struct {
	*Process
	Endpoint string
}

// StartMetadataMock starts the mock in dir with the given metadata values
// (for example "public-ipv4": "127.0.0.1"). With imdsv2 set, every request
// needs a session token, as on instances that require IMDSv2.
func StartMetadataMock(ctx context.Context, dir string, values map[string]string, imdsv2 bool) (*MetadataMock, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}

	config := map[string]any{"metadata": map[string]any{"values": values}}
	data, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the metadata mock config: %w", err)
	}
	configPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(configPath, data, 0o644); err != nil {
		return nil, fmt.Errorf("failed to write the metadata mock config: %w", err)
	}

	// -n 127.0.0.1 keeps the mock off every other interface
	args := []string{"-n", "127.0.0.1", "-p", strconv.Itoa(port), "-c", configPath}
	if imdsv2 {
		args = append(args, "-I")
	}
	proc, err := startProcess("ec2-metadata-mock", filepath.Join(dir, "ec2-metadata-mock.log"), []string{"HOME=" + dir}, MockBinary(), args...)
	if err != nil {
		return nil, err
	}

	mock := &MetadataMock{Process: proc, Endpoint: "http://127.0.0.1:" + strconv.Itoa(port)}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := mock.waitReady(waitCtx); err != nil {
		_ = proc.Stop(5 * time.Second)
		return nil, fmt.Errorf("metadata mock did not start (log %s): %w", proc.LogPath, err)
	}
	return mock, nil
}

func (m *MetadataMock) waitReady(ctx context.Context) error {
	if err := WaitForTCP(ctx, m.Endpoint[len("http://"):]); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.Endpoint+"/latest/api/token", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("token request failed: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token request returned %s", resp.Status)
	}
	return nil
}
