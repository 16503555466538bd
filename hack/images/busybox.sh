#!/usr/bin/env bash
# Builds the test image nomad-driver-sshrerun/busybox:local without a
# registry: a FROM-scratch root file system that holds only the static
# busybox from Debian's busybox-static package, imported with `docker import`.
# The image has no SSH server and no /etc/passwd, which is the hard case for
# the in-container SSH server.
set -euo pipefail

IMAGE="${IMAGE:-nomad-driver-sshrerun/busybox:local}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$ROOT/.cache/images/busybox"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
	echo "image $IMAGE is present"
	exit 0
fi

# fetch the package once; apt-get download needs the package lists
mkdir -p "$WORK/deb"
deb="$(ls "$WORK"/deb/busybox-static_*.deb 2>/dev/null | head -n1 || true)"
if [ -z "$deb" ]; then
	(cd "$WORK/deb" && { apt-get download busybox-static 2>/dev/null || { apt-get update -qq && apt-get download busybox-static; }; })
	deb="$(ls "$WORK"/deb/busybox-static_*.deb | head -n1)"
fi

# lay out the root file system: busybox, one link per applet, and the
# directories a shell session expects
rootfs="$WORK/rootfs"
rm -rf "$rootfs" "$WORK/extract"
dpkg-deb -x "$deb" "$WORK/extract"
mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/root" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
cp "$WORK/extract/bin/busybox" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done

tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . | docker import \
	--change 'ENV PATH=/bin' \
	--change 'CMD ["/bin/sh"]' \
	--change 'LABEL nomad-driver-sshrerun.test-image=true' \
	- "$IMAGE" >/dev/null
echo "built image $IMAGE from $(basename "$deb")"
