#!/usr/bin/env bash
# make mac-check: on a real Mac, what the XNU model in routes/ cannot
# prove (issue 23). Nothing here runs in CI; `make darwin-check` covers
# what Linux can.
#
#   sudo make mac-check                          # steps 1-2: route tests on the kernel
#   sudo MAC_CHECK_DST=10.10.0.5 \
#        MAC_CHECK_URL=http://10.10.0.5/ make mac-check   # + steps 3-7, tunnel up (vpn up)
#
# Steps 5-7 kill the agent with SIGKILL and let launchd start it again
# (the LaunchDaemon of packaging/launchd, KeepAlive): the tunnel is down
# afterwards. STATE_DIR is the agent's state dir (/var/lib/clearpath).
set -euo pipefail

GO=${GO:-go}
STATE_DIR=${STATE_DIR:-/var/lib/clearpath}
cd "$(dirname "$0")/.."

fail() { echo "mac-check: FAIL: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
ours() { netstat -rn | awk '$3 ~ /1/'; } # RTF_PROTO1 is flag "1" (NetBird's too)

[ "$(uname -s)" = Darwin ] || { echo "mac-check: run this on macOS; on Linux, make darwin-check" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "mac-check: run as root (sudo): it adds and removes routes" >&2; exit 2; }

step "1. route tests on the real kernel: read-only, then one TEST-NET host route added and removed"
CLEARPATH_DARWIN_LIVE=1 $GO test -count=1 -run 'Darwin|BSD|Mac' ./routes/

step "2. the route socket answers RTM_GET for the default route"
route -n get default || fail "route -n get default"

if [ -z "${MAC_CHECK_DST:-}" ]; then
	echo
	echo "MAC_CHECK_DST is not set: the tunnel checks (3-7) were skipped."
	echo "Run 'vpn up', then MAC_CHECK_DST=<an IPv4 address behind the gateway> [MAC_CHECK_URL=http://...] sudo -E make mac-check"
	exit 0
fi

step "3. the tunnel's routes: into a utun, with flag 1 (RTF_PROTO1)"
netstat -rn -f inet | awk 'NR<=4 || $4 ~ /^utun/'
route -n get "$MAC_CHECK_DST" | tee /dev/stderr | grep -q 'interface: utun' || fail "$MAC_CHECK_DST is not routed into a utun"

step "4. an unbound socket to $MAC_CHECK_DST gets the utun's IPv4 address; RTM_GET an IPv4 interface address (point 1)"
CLEARPATH_DARWIN_TUNNEL_DST=$MAC_CHECK_DST $GO test -count=1 -run TestDarwinLiveTunnelSource -v ./routes/

if [ -n "${MAC_CHECK_URL:-}" ]; then
	step "5. curl through the tunnel from an unbound socket"
	curl -fsS --max-time 10 -o /dev/null -w '%{http_code} from %{local_ip}\n' "$MAC_CHECK_URL" || fail "curl $MAC_CHECK_URL"
fi

step "6. kill -9 the agent: what remains until launchd starts it again (points 8, 10)"
pid=$(cat "$STATE_DIR/agent.pid") || fail "no $STATE_DIR/agent.pid: is the agent running?"
kill -9 "$pid"
sleep 0.2
echo "routes with flag 1 right after the kill (expected: the endpoint pin, ::/1 and 8000::/1 when the tunnel has no IPv6; none on a utun):"
ours
ours | awk '$4 ~ /^utun/ {bad=1} END {exit bad}' || fail "routes on a utun outlived it (if_rtdel)"

step "7. launchd restarts the agent, which restores at start: none of ours remain, IPv6 is not refused"
for _ in $(seq 1 20); do
	sleep 0.5
	[ -f "$STATE_DIR/agent.pid" ] && [ "$(cat "$STATE_DIR/agent.pid")" != "$pid" ] && break
done
sleep 1
if [ -n "$(ours)" ]; then
	echo "left with flag 1 (another program's, like NetBird, would show here too):"
	ours
	fail "routes of ours remain after the agent's restart"
fi
if route -n get -inet6 2001:db8::1 2>/dev/null | grep -q REJECT; then
	fail "IPv6 is still refused"
fi
echo
echo "mac-check: OK"
