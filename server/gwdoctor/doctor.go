// Package gwdoctor checks a running gateway's host: forwarding, each
// network's WireGuard device, policy rules and table, that allowed
// destinations are routed and others are not, and that each address pool has
// a return route from the VPCs behind it (proved by a ping from the pool's
// gateway address). Every finding says what is wrong, the evidence, and the
// exact fix: a command here, or the route the operator must add in the
// cloud's route table.
package gwdoctor

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// The report is analysis.Report, the schema `vpn doctor` prints too
// (analysis.Schema): findings with an id, a severity (ok, info, warning,
// error), the network they concern, evidence, the commands that fix them
// on this host and the routes to add in the cloud.

// finding starts a finding about the gateway's own state.
func finding(id, sev, network, title string, ev ...string) analysis.Finding {
	f := analysis.Finding{ID: id, Severity: sev, Network: network, Title: title, Owner: "clearpath", Evidence: []analysis.Evidence{}}
	for _, e := range ev {
		f.Evidence = append(f.Evidence, analysis.Evidence{Kind: "text", Text: e})
	}
	return f
}

// stepsEvidence is the policy walk's steps as evidence.
func stepsEvidence(d analysis.Decision) []analysis.Evidence {
	var out []analysis.Evidence
	for _, s := range d.Steps {
		ev := analysis.Evidence{Kind: "step", Text: s.String()}
		r := s.Rule
		ev.Rule = &r
		ev.Route = s.Route
		out = append(out, ev)
	}
	return out
}

// ReturnRoute describes the route a VPC needs so replies to pool reach the
// gateway at via (the gateway's address on the VPC side).
func ReturnRoute(pool netip.Prefix, via netip.Addr, vpc netip.Prefix, dev string) (cloud, linux string) {
	target := "this gateway"
	if via.IsValid() {
		target = fmt.Sprintf("this gateway (%s on %s: its instance/network interface)", via, dev)
	}
	cloud = fmt.Sprintf("in the route table of the VPC/subnet holding %s: destination %s -> target %s; and disable source/destination checking on that interface", vpc, pool, target)
	if via.IsValid() {
		linux = fmt.Sprintf("ip route add %s via %s   # on a Linux router or host in %s", pool, via, vpc)
	}
	return cloud, linux
}

// sampleOutside returns an address no allowed CIDR of n contains, to check
// that the network's traffic there is refused.
func sampleOutside(n config.Network, v6 bool) netip.Addr {
	candidates := []string{"192.0.2.123", "198.18.0.1", "203.0.113.77", "1.1.1.1"}
	if v6 {
		candidates = []string{"2001:db8:ffff::1", "2606:4700::1111", "fd7f::1"}
	}
	for _, c := range candidates {
		a := netip.MustParseAddr(c)
		inside := false
		for _, p := range n.Allow {
			if p.Contains(a) {
				inside = true
			}
		}
		if !inside {
			return a
		}
	}
	return netip.Addr{}
}

// firstHost is the first usable address of p (the network address + 1).
func firstHost(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if p.Bits() < p.Addr().BitLen() {
		a = a.Next()
	}
	return a
}

// Text renders the report for a terminal.
func Text(r analysis.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		mark := map[string]string{analysis.OK: "ok  ", analysis.Info: "note", analysis.Warning: "WARN", analysis.Error: "FAIL"}[f.Severity]
		where := ""
		if f.Network != "" {
			where = "[" + f.Network + "] "
		}
		fmt.Fprintf(&b, "%s %s%s (%s)\n", mark, where, f.Title, f.ID)
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "       %s\n", e.Text)
		}
		for _, c := range f.Commands {
			fmt.Fprintf(&b, "       fix: %s\n", c)
		}
		for _, c := range f.Cloud {
			fmt.Fprintf(&b, "       add: %s\n", c)
		}
	}
	switch {
	case r.Summary.Healthy:
		b.WriteString("\nHealthy.\n")
	default:
		fmt.Fprintf(&b, "\n%d errors, %d warnings.\n", r.Summary.Errors, r.Summary.Warnings)
	}
	return b.String()
}

// Options configure Check.
type Options struct {
	Config *config.Config
	// Probes are extra hosts to ping for the return-route check (each
	// counts for the allowed CIDR that contains it).
	Probes []netip.Addr
	// PingTimeout bounds each ping (default 1s).
	PingTimeout time.Duration
}
