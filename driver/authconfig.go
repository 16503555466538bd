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

// authFile is a parsed auth_config file, with each entry of auths decoded
// once.
type authFile struct {
	path string
	// entries maps each key of auths to its credentials, or to nil for an
	// empty entry.
	entries     map[string]*registry.AuthConfig
	credsStore  string
	credHelpers map[string]string
}

// dockerAuth is one entry of auths.
type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// empty reports whether the entry contains no credentials, as the entries
// that docker login writes next to a credential helper.
func (a dockerAuth) empty() bool {
	return a.Auth == "" && a.Username == "" && a.Password == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// readAuthConfig reads and parses the file at path, and decodes every entry
// of auths. A missing file returns an error that wraps fs.ErrNotExist.
func readAuthConfig(path string) (*authFile, error) {
	opened, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("plugin config auth_config: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin config auth_config: %w; make the file readable by the Nomad client's user", err)
	}
	defer opened.Close()

	data, err := io.ReadAll(io.LimitReader(opened, maxAuthConfigSize+1))
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

	file := &authFile{
		path:        path,
		entries:     map[string]*registry.AuthConfig{},
		credsStore:  config.CredsStore,
		credHelpers: config.CredHelpers,
	}
	for key, entry := range config.Auths {
		if entry.empty() {
			file.entries[key] = nil
			continue
		}
		user, password, err := entry.credentials()
		if err != nil {
			return nil, fmt.Errorf("plugin config auth_config: %s, auths[%q]: %w", path, key, err)
		}
		file.entries[key] = &registry.AuthConfig{Username: user, Password: password, IdentityToken: entry.IdentityToken, RegistryToken: entry.RegistryToken, ServerAddress: key}
	}
	return file, nil
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

// lookup returns the credentials that the file contains for the registry
// of image, or nil when it contains none.
//
// Several keys may name one registry, such as "docker.io" and
// "https://index.docker.io/v1/". Entries with credentials win over empty
// ones, a key that is the bare host wins over other forms, and then the
// first key in sorted order wins, so the choice does not depend on the
// order of the file.
func (f *authFile) lookup(image string) (*registry.AuthConfig, error) {
	host, err := registryHost(image)
	if err != nil {
		return nil, err
	}

	// as in the Docker CLI, a helper named for the registry wins over auths
	for _, key := range slices.Sorted(maps.Keys(f.credHelpers)) {
		if normalizeRegistryKey(key) == host {
			return nil, f.helperError(host, f.credHelpers[key])
		}
	}

	var keys []string
	for key := range f.entries {
		if normalizeRegistryKey(key) == host {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(f.keyRank(a, host), f.keyRank(b, host)), strings.Compare(a, b))
	})
	if auth := f.entries[keys[0]]; auth != nil {
		return auth, nil
	}

	// docker login records an empty entry next to the default helper
	if f.credsStore != "" {
		return nil, f.helperError(host, f.credsStore)
	}
	return nil, nil
}

// helperError returns the error for a registry whose credentials are in a
// credential helper.
func (f *authFile) helperError(host, helper string) error {
	return fmt.Errorf("plugin config auth_config: %s keeps the credentials of %s in the credential helper %q, which the driver does not run; write them into auths, for example with docker login and a config without credsStore and credHelpers", f.path, host, helper)
}

// keyRank orders the keys of one registry: 0 for an entry with credentials
// under the bare host, 1 for one under another form of the host, and 2 for
// an empty entry.
func (f *authFile) keyRank(key, host string) int {
	switch {
	case f.entries[key] == nil:
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
		d.logger.Warn("the auth_config file contains registry credentials that other users can read; run chmod 600 on it", "auth_config", path, "mode", info.Mode().Perm().String())
	}
	return nil
}

// pluginAuth returns the credentials for image from the plugin's
// auth_config, or nil when the option is unset, the file is missing or it
// contains nothing for the image's registry. The file is read at each pull,
// so credentials that a job on the host refreshes take effect at once.
func pluginAuth(path, image string, logger hclog.Logger) (*registry.AuthConfig, error) {
	if path == "" {
		return nil, nil
	}
	file, err := readAuthConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		logger.Warn("the auth_config file does not exist, so the pull is anonymous", "auth_config", path, "image", image)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return file.lookup(image)
}
