//go:build tools

// Package tools pins the registry version.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
