package driver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/zclconf/go-cty/cty/msgpack"

	"github.com/sshrerun/nomad-driver-sshrerun/driver/advertise"
	"github.com/sshrerun/nomad-driver-sshrerun/driver/initbin"
)

// clientConfigFile is the part of a Nomad agent config file that holds
// plugin blocks.
type clientConfigFile struct {
	Plugins []*pluginBlock `hcl:"plugin"`
}

type pluginBlock struct {
	Name   string                   `hcl:",key"`
	Config []map[string]interface{} `hcl:"config"`
}

// PluginConfigFromFile reads the plugin block of this driver from a Nomad
// agent config file and decodes it as Nomad does: through the plugin's
// config schema, with its defaults. A file without the block yields the
// defaults.
func PluginConfigFromFile(path string) (*PluginConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the client config: %w", err)
	}
	if strings.HasSuffix(path, ".json") {
		return nil, fmt.Errorf("client config %s is JSON, which this command does not read; give the HCL file that contains the plugin %q block", path, PluginName)
	}

	var file clientConfigFile
	if err := hcl.Decode(&file, string(data)); err != nil {
		return nil, fmt.Errorf("failed to parse the client config %s: %w", path, err)
	}

	config := map[string]interface{}{}
	for _, block := range file.Plugins {
		if block.Name != PluginName {
			continue
		}
		for _, c := range block.Config {
			for key, value := range c {
				config[key] = value
			}
		}
	}
	return decodePluginConfig(config)
}

// decodePluginConfig runs a plugin block's config through the schema, as
// Nomad's plugin loader does, and decodes the result.
func decodePluginConfig(config map[string]interface{}) (*PluginConfig, error) {
	spec, diags := hclspecutils.Convert(configSpec)
	if diags.HasErrors() {
		return nil, fmt.Errorf("invalid plugin config schema: %s", diags.Error())
	}
	value, diags, errs := hclutils.ParseHclInterface(config, spec, nil)
	if diags.HasErrors() {
		return nil, fmt.Errorf("invalid plugin config: %v", errs)
	}
	encoded, err := msgpack.Marshal(value, value.Type())
	if err != nil {
		return nil, fmt.Errorf("failed to encode the plugin config: %w", err)
	}

	var pluginConfig PluginConfig
	if err := base.MsgPackDecode(encoded, &pluginConfig); err != nil {
		return nil, fmt.Errorf("failed to decode the plugin config: %w", err)
	}
	applyAdvertiseDefaults(&pluginConfig)
	return &pluginConfig, nil
}

// ResolverConfig validates a plugin config and returns the resolver's
// config and the address family of ssh commands, as the driver uses them.
func ResolverConfig(cfg *PluginConfig) (advertise.Config, advertise.Family, error) {
	s, err := validatePluginConfig(cfg)
	if err != nil {
		return advertise.Config{}, "", err
	}
	return s.advertise, s.family, nil
}

// CheckDataDir checks the plugin config's data_dir as the plugin does at
// start, without creating it: a directory that exists must belong to this
// process's user, and neither its group nor other users may write to it.
func CheckDataDir(cfg *PluginConfig) error {
	s, err := validatePluginConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(s.dataDir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := initbin.CheckDir(s.dataDir); err != nil {
		return fmt.Errorf("plugin config data_dir: %w", err)
	}
	return nil
}
