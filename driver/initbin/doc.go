// Package initbin contains the container init that the plugin binary carries,
// and installs it on the host for containers to mount.
//
// The init is a small static binary built from plugin/containerinit. A
// plugin built with the build tag sshrerun_embed_init, as `make build`
// does, embeds it; then Embedded returns its bytes. Without the tag,
// Embedded returns nil and the driver mounts the plugin's own executable,
// which serves the init under its container-init subcommand at a higher
// memory cost per container.
package initbin

// FileName is the name of the built init in this package's directory,
// where the embed directive reads it.
const FileName = "sshrerun-init"
