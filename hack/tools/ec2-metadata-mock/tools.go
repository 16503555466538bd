//go:build tools

// Package tools pins the metadata mock version.
package tools

import _ "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock"
