#!/bin/sh
# clearpath postrm (deb: remove|purge|upgrade|...; rpm: $1 = 0 erase, 1 upgrade).
# The clearpath group and the state in /var/lib/clearpath and
# /var/lib/clearpath-gateway (device key, gateway store) are kept: a
# reinstall keeps the device's addresses and the gateway's peers.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
