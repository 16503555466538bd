#!/usr/bin/env bash
# Builds the test images without a registry:
# - nomad-driver-sshrerun/busybox:local, a FROM-scratch root file system that
#   contains only the static busybox from Debian's busybox-static package,
#   imported with `docker import`. It has no SSH server and no /etc/passwd,
#   which is the hard case for the in-container SSH server.
# - nomad-driver-sshrerun/busybox-user:local, the same with an /etc/passwd
#   and /etc/group and `USER builder` (UID 1000, also in the group ci, GID
#   2000), as CI images with a named user are.
set -euo pipefail

IMAGE="${IMAGE:-nomad-driver-sshrerun/busybox:local}"
USER_IMAGE="${USER_IMAGE:-nomad-driver-sshrerun/busybox-user:local}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$ROOT/.cache/images/busybox"

# build_user_image adds the user files to $IMAGE in a stopped container and
# commits it, since no registry can serve a base image to a build
build_user_image() {
	if docker image inspect "$USER_IMAGE" >/dev/null 2>&1; then
		echo "image $USER_IMAGE is present"
		return
	fi
	local overlay="$WORK/user-overlay" container
	rm -rf "$overlay"
	mkdir -p "$overlay/etc" "$overlay/home/builder"
	printf 'root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/home/builder:/bin/sh\n' >"$overlay/etc/passwd"
	printf 'root:x:0:\nbuilder:x:1000:\nci:x:2000:builder\n' >"$overlay/etc/group"

	container="$(docker create --label nomad-driver-sshrerun.image-build=true "$IMAGE")"
	trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
	tar -C "$overlay" --numeric-owner --owner=0 --group=0 -c etc | docker cp - "$container:/"
	tar -C "$overlay" --numeric-owner --owner=1000 --group=1000 -c home | docker cp -a - "$container:/"
	docker commit --change 'USER builder' "$container" "$USER_IMAGE" >/dev/null
	docker rm "$container" >/dev/null
	trap - EXIT
	echo "built image $USER_IMAGE"
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
	echo "image $IMAGE is present"
	build_user_image
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
build_user_image
