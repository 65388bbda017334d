#!/usr/bin/env bash
# Installs the Debian packages ClearPath's tests and demo need, and only
# those missing: `apt-get update` runs only when something must be installed.
set -euo pipefail

# iproute2: ip netns/link/route; wireguard-tools: wg show/set; procps: sysctl;
# curl, socat, iputils-ping, tcpdump, iperf3: what you reach for in the lab;
# git: go build stamps version information from it; ca-certificates: module
# downloads over HTTPS.
# postgresql: the gateway store tests run against a real PostgreSQL 15;
# chromium: the login tests drive a real headless browser.
# gcc and the X11/GL dev packages: vpn-tray (fyne) builds with cgo, and
# `go vet ./...` / `go test ./...` compile it. xvfb, dbus-x11,
# haskell-gtk-sni-tray-utils (a StatusNotifier tray host), imagemagick
# (screenshots) and xdotool (clicks): the tray's desktop session test.
# openvpn, openssl, util-linux (taskset): `make bench` compares against
# OpenVPN 2.6 with a test PKI made at bench time, each end pinned to a core.
# nftables: the nft command the host-guard tests read the gateway's table with.
# systemd (systemd-analyze verify of the units), podman and runc (the
# gateway image built and run as the lab gateway), docker-compose (its
# config check of deploy/compose), debootstrap (the .deb installed on a
# clean Debian root by `make package-test`), logrotate (its -d check of
# packaging/logrotate/clearpath).
PKGS=(iproute2 wireguard-tools procps curl socat iputils-ping tcpdump iperf3 git ca-certificates postgresql chromium
	gcc libc6-dev libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev
	xvfb dbus-x11 haskell-gtk-sni-tray-utils imagemagick xdotool
	openvpn openssl util-linux nftables
	systemd podman runc docker-compose debootstrap logrotate)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all present (${PKGS[*]})"
	exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=(sudo)
	else
		echo "deps: missing ${missing[*]} and not root; run as root" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
