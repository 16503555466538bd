//go:build tools

// Package tools pins the Nomad agent version.
package tools

import _ "github.com/hashicorp/nomad"
