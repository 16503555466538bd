//go:build !sshrerun_embed_init

package initbin

// Embedded returns nil: this plugin was built without the init.
func Embedded() []byte {
	return nil
}
