#!/bin/sh
# clearpath prerm (deb: remove|upgrade|deconfigure; rpm: $1 = 0 erase, 1 upgrade).
set -e
case "$1" in
	remove|0)
		if [ -d /run/systemd/system ]; then
			# Stopping the agent takes the tunnel down and puts routes back.
			systemctl disable --now clearpath-agent.service clearpath-gateway.service >/dev/null 2>&1 || true
		fi
		;;
esac
exit 0
