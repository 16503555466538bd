package driver

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"
	"github.com/hashicorp/go-hclog"
)

// maxAuthConfigSize bounds how much of the auth_config file the driver
// reads.
const maxAuthConfigSize = 1 << 20

// dockerConfig is the part of a Docker CLI config.json that the driver
// reads: the credentials under auths, and the names of credential helpers,
// which the driver does not run.
type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredsStore  string                `json:"credsStore"`
	CredHelpers map[string]string     `json:"credHelpers"`
}

// dockerAuth is one entry of auths.
type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// empty reports whether the entry holds no credentials, as the entries
// that docker login writes next to a credential helper.
func (a dockerAuth) empty() bool {
	return a.Auth == "" && a.Username == "" && a.Password == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// readAuthConfig reads and parses the file at path. A missing file returns
// an error that wraps fs.ErrNotExist.
func readAuthConfig(path string) (*dockerConfig, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("plugin config auth_config: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin config auth_config: %w; make the file readable by the Nomad client's user", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxAuthConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("plugin config auth_config: failed to read %s: %w; give the path of a Docker config.json file", path, err)
	}
	if len(data) > maxAuthConfigSize {
		return nil, fmt.Errorf("plugin config auth_config: %s is larger than %d bytes; give a Docker config.json with only the auths of this client's registries", path, maxAuthConfigSize)
	}
	var config dockerConfig
	if err := json.Unmarshal(data, &config); err != nil {
		return nil, fmt.Errorf("plugin config auth_config: %s is not a Docker config.json: %w; write it as docker login does, with an \"auths\" object", path, err)
	}
	for key, entry := range config.Auths {
		if _, _, err := entry.credentials(); err != nil {
			return nil, fmt.Errorf("plugin config auth_config: %s, auths[%q]: %w", path, key, err)
		}
	}
	return &config, nil
}

// credentials returns the user name and password of the entry.
func (a dockerAuth) credentials() (string, string, error) {
	if a.Auth == "" {
		if (a.Username == "") != (a.Password == "") {
			return "", "", errors.New(`the entry has only one of username and password; give both, or auth with the base64 of "user:password"`)
		}
		return a.Username, a.Password, nil
	}
	decoded, err := base64.StdEncoding.DecodeString(a.Auth)
	if err != nil {
		return "", "", fmt.Errorf("auth is not base64: %w; set it to the base64 of \"user:password\"", err)
	}
	user, password, ok := strings.Cut(string(decoded), ":")
	if !ok {
		return "", "", errors.New(`auth does not decode to "user:password"; set it to the base64 of "user:password"`)
	}
	return user, password, nil
}

// registryHost returns the registry host of an image reference, such as
// "registry.example.com:5000", or "docker.io" for Docker Hub.
func registryHost(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("image %q is not a valid reference: %w", image, err)
	}
	return normalizeRegistryKey(reference.Domain(named)), nil
}

// normalizeRegistryKey turns a key of auths, such as
// "https://index.docker.io/v1/" or "registry.example.com", into a host.
func normalizeRegistryKey(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(key), "https://"), "http://")
	key, _, _ = strings.Cut(key, "/")
	if key == "index.docker.io" || key == "registry-1.docker.io" {
		return "docker.io"
	}
	return key
}

// lookup returns the credentials that the file holds for the registry of
// image, or nil when it holds none. path names the file in errors.
//
// Several keys may name one registry, such as "docker.io" and
// "https://index.docker.io/v1/". Entries with credentials win over empty
// ones, a key that is the bare host wins over other forms, and then the
// first key in sorted order wins, so the choice does not depend on the
// order of the file.
func (c *dockerConfig) lookup(image, path string) (*registry.AuthConfig, error) {
	host, err := registryHost(image)
	if err != nil {
		return nil, err
	}

	// as in the Docker CLI, a helper named for the registry wins over auths
	for _, key := range slices.Sorted(maps.Keys(c.CredHelpers)) {
		if normalizeRegistryKey(key) == host {
			return nil, helperError(path, host, c.CredHelpers[key])
		}
	}

	var keys []string
	for key := range c.Auths {
		if normalizeRegistryKey(key) == host {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if rank := cmp.Compare(authKeyRank(c.Auths[a], a, host), authKeyRank(c.Auths[b], b, host)); rank != 0 {
			return rank
		}
		return strings.Compare(a, b)
	})
	if len(keys) > 0 && !c.Auths[keys[0]].empty() {
		key := keys[0]
		entry := c.Auths[key]
		user, password, err := entry.credentials()
		if err != nil {
			return nil, fmt.Errorf("plugin config auth_config: %s, auths[%q]: %w", path, key, err)
		}
		return &registry.AuthConfig{Username: user, Password: password, IdentityToken: entry.IdentityToken, RegistryToken: entry.RegistryToken, ServerAddress: key}, nil
	}

	// docker login records an empty entry next to the default helper
	if len(keys) > 0 && c.CredsStore != "" {
		return nil, helperError(path, host, c.CredsStore)
	}
	return nil, nil
}

// helperError is the error for a registry whose credentials a credential
// helper holds.
func helperError(path, host, helper string) error {
	return fmt.Errorf("plugin config auth_config: %s keeps the credentials of %s in the credential helper %q, which the driver does not run; write them into auths, for example with docker login and a config without credsStore and credHelpers", path, host, helper)
}

// authKeyRank orders the keys of one registry: 0 for an entry with
// credentials under the bare host, 1 for one under another form of the
// host, and 2 for an empty entry.
func authKeyRank(entry dockerAuth, key, host string) int {
	switch {
	case entry.empty():
		return 2
	case strings.ToLower(key) == host:
		return 0
	default:
		return 1
	}
}

// checkAuthConfig fails when the auth_config file exists and is not a
// Docker config.json that the driver can read. A missing file is only a
// warning: a boot script may write it later, and each pull reads it again.
func (d *Driver) checkAuthConfig(path string) error {
	if path == "" {
		return nil
	}
	_, err := readAuthConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.logger.Warn("the auth_config file does not exist yet; pulls are anonymous until it does", "auth_config", path)
		return nil
	}
	if err != nil {
		return err
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		d.logger.Warn("the auth_config file holds registry credentials that other users may read; run chmod 600 on it", "auth_config", path, "mode", info.Mode().Perm().String())
	}
	return nil
}

// pluginAuth returns the credentials for image from the plugin's
// auth_config, or nil when the option is unset, the file is missing or it
// holds nothing for the image's registry. The file is read at each pull,
// so credentials that a job on the host refreshes take effect at once.
func pluginAuth(path, image string, logger hclog.Logger) (*registry.AuthConfig, error) {
	if path == "" {
		return nil, nil
	}
	config, err := readAuthConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		logger.Warn("the auth_config file does not exist, so the pull is anonymous", "auth_config", path, "image", image)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return config.lookup(image, path)
}
