#!/bin/sh
# clearpath postinst (deb: configure; rpm: $1 = 1 install, 2 upgrade).
set -e
# Members of the clearpath group may drive the agent over its socket
# (/run/clearpath/agent.sock, root:clearpath 0660): `vpn up` without sudo.
if ! getent group clearpath >/dev/null; then
	groupadd --system clearpath
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# The agent starts now and at boot; the gateway waits for
	# /etc/clearpath/gateway.yaml (systemctl enable --now clearpath-gateway).
	systemctl enable clearpath-agent.service >/dev/null 2>&1 || true
	systemctl restart clearpath-agent.service >/dev/null 2>&1 || true
	if systemctl is-active --quiet clearpath-gateway.service; then
		systemctl restart clearpath-gateway.service || true
	fi
fi
exit 0
