package analysis

import "slices"

// IDs lists every finding id doctor can report, so `vpn doctor --fix ID`
// can tell a typo (an id no check has) from a finding that is simply not
// there now. TestIDsCatalogue keeps it in step with the checks' sources.
var IDs = []string{
	"dead-device-route",
	"dead-tun",
	"default-duplicate",
	"default-hijack",
	"default-missing",
	"dns-domain-conflict",             // client/splitdns
	"dns-journal-left",                // client/splitdns (split DNS)
	"dns-leak-full-tunnel",            // client/splitdns
	"dns-resolver-stale",              // client/splitdns (macOS)
	"dns-stub-orphaned",               // client/splitdns
	"dns-tunnel-resolver-unreachable", // client/splitdns
	"dns-unroutable",
	"endpoint-loop",
	"endpoint-pin-stale",
	"fail-closed-block", // added by cmd/vpn's doctor from the agent's state
	"handshake-stale",
	"ipv6-leak",
	"leftover-owned",
	"mtu-too-large",
	"orphan-rule",
	"path-mtu",
	"rp-filter-drop",
	"rule-priority-conflict",
	"stale-endpoint-route",
	"subnet-overlap",
	"tunnel-address",
}

// KnownID reports whether id names a finding doctor can report.
func KnownID(id string) bool { return slices.Contains(IDs, id) }
