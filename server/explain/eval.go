// Package explain answers "would this user reach that destination, and
// which rule or route decides?" for a gateway: it walks the policy rules and
// routing tables (analysis.Walk, the one policy walk, on a routes
// snapshot) for a packet arriving on the network's WireGuard interface from
// the user's tunnel address, and confirms the answer with a real route
// lookup (`ip route get fibmatch DST from SRC iif WG`).
//
// Reading a walk's decision (Judge) is pure so it can be tested from
// fixtures; reading the live tables and asking the kernel is in
// explain_linux.go.
package explain

import (
	"fmt"
	"net/netip"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// Outcome is what a walk's decision means for a packet from a tunnel.
type Outcome struct {
	// Forwarded is true when the packet leaves towards a next hop (a
	// unicast route through another interface) or is delivered to the
	// gateway itself (Local); false when it is dropped (blackhole,
	// unreachable, prohibit, no route) or returned into the tunnel
	// interface it came from.
	Forwarded bool
	// Local means the destination is one of the gateway's own addresses.
	Local bool
	Why   string
}

// Judge reads the walk's decision d for a packet to dst arriving on iif.
func Judge(d analysis.Decision, dst netip.Addr, iif string) Outcome {
	switch {
	case d.NoRoute:
		return Outcome{Why: "no rule leads to a route: the kernel has no route for it"}
	case d.Rule != nil && !d.Route.Dst.IsValid():
		return Outcome{Why: fmt.Sprintf("rule %q drops it", d.Rule)}
	}
	rt := d.Route
	switch rt.Type {
	case routes.TypeUnicast, "":
		if rt.Device == iif {
			return Outcome{Why: fmt.Sprintf("route %q sends it back into %s", rt, iif)}
		}
		return Outcome{Forwarded: true, Why: fmt.Sprintf("route %q forwards it", rt)}
	case routes.TypeLocal:
		return Outcome{Forwarded: true, Local: true, Why: fmt.Sprintf("%s is the gateway's own address (route %q)", dst, rt)}
	}
	return Outcome{Why: fmt.Sprintf("route %q drops it", rt)}
}

// Path renders the walk's steps, one line each.
func Path(d analysis.Decision) []string {
	out := make([]string, 0, len(d.Steps))
	for _, s := range d.Steps {
		out = append(out, s.String())
	}
	return out
}
