#!/usr/bin/env bash
# Drops and counts outgoing packets to instance metadata addresses.
#   install  adds the rules (host traffic in OUTPUT, container traffic in FORWARD)
#   check    prints the counters and fails when any packet was counted
#   remove   deletes the rules
set -euo pipefail

CHAIN=SSHRERUN-METADATA-GUARD

# The guarded destinations. Only a check of this script itself changes them,
# to loopback addresses.
V4_DEST="${METADATA_GUARD_V4:-169.254.0.0/16}"
V6_DEST="${METADATA_GUARD_V6:-fd00:ec2::254/128}"

ipv6_available() {
	command -v ip6tables >/dev/null && ip6tables -S OUTPUT >/dev/null 2>&1
}

install_rules() { # tool destination
	local tool=$1 dest=$2
	"$tool" -N "$CHAIN" 2>/dev/null || "$tool" -F "$CHAIN"
	"$tool" -A "$CHAIN" -j DROP
	"$tool" -I OUTPUT 1 -d "$dest" -j "$CHAIN"
	"$tool" -I FORWARD 1 -d "$dest" -j "$CHAIN"
}

remove_rules() { # tool destination
	local tool=$1 dest=$2
	"$tool" -D OUTPUT -d "$dest" -j "$CHAIN" 2>/dev/null || true
	"$tool" -D FORWARD -d "$dest" -j "$CHAIN" 2>/dev/null || true
	"$tool" -F "$CHAIN" 2>/dev/null || true
	"$tool" -X "$CHAIN" 2>/dev/null || true
}

packets() { # tool
	"$1" -L "$CHAIN" -v -n -x | awk 'NR > 2 { sum += $1 } END { print sum + 0 }'
}

case "${1:-}" in
install)
	install_rules iptables "$V4_DEST"
	if ipv6_available; then
		install_rules ip6tables "$V6_DEST"
	fi
	echo "metadata guard installed"
	;;
check)
	failed=0
	v4=$(packets iptables)
	echo "metadata guard: $v4 packets dropped to $V4_DEST"
	[ "$v4" -eq 0 ] || failed=1
	if ipv6_available; then
		v6=$(packets ip6tables)
		echo "metadata guard: $v6 packets dropped to $V6_DEST"
		[ "$v6" -eq 0 ] || failed=1
	fi
	if [ "$failed" -ne 0 ]; then
		echo "FAIL: something sent packets to an instance metadata address"
		exit 1
	fi
	;;
remove)
	remove_rules iptables "$V4_DEST"
	if ipv6_available; then
		remove_rules ip6tables "$V6_DEST"
	fi
	;;
*)
	echo "usage: $0 install|check|remove" >&2
	exit 2
	;;
esac
