//go:build sshrerun_embed_init

package initbin

import _ "embed"

//go:embed sshrerun-init
var embedded []byte

// Embedded returns the init binary that the plugin carries.
func Embedded() []byte {
	return embedded
}
