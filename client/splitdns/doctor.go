package splitdns

import (
	"fmt"
	"time"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// DoctorInput is what `vpn doctor` gathered about DNS for Diagnose.
type DoctorInput struct {
	ResolvPath string
	ResolvConf []byte
	// Journal is the DNS journal in the state dir (nil: none).
	Journal *Journal
	// AgentStub: an agent answers and runs the stub (its status says so).
	AgentStub bool
	// StubAnswered: a query to the stub's address got an answer.
	StubAnswered bool
	// Unreachable lists the tunnel's servers that did not answer a query
	// sent through the tunnel (only while the agent runs the stub).
	Unreachable []string
	Now         time.Time

	// FullTunnel: the agent captures all traffic through TunnelDev.
	FullTunnel bool
	TunnelDev  string
	// Resolvers are the resolvers queries reach, each with its route.
	Resolvers []ResolverRoute
	// Domains, Servers and All are the session's split DNS (agent
	// status); Claims what other resolver configurations claim.
	Domains []string
	Servers []string
	All     bool
	Claims  []DomainClaim

	// ResolverDir (macOS /etc/resolver; "" not checked), the files in it
	// that are exactly ours, the resolver journal, and whether the agent
	// runs a session with resolver files (AgentResolver).
	ResolverDir     string
	ResolverFiles   []string
	ResolverJournal *ResolverJournal
	AgentResolver   bool
}

// IDs of the findings Diagnose makes (listed in routes/analysis.IDs too;
// TestIDsCatalogue reads the literals below); RestoreFixable tells those
// whose fix is Restore (the journal's byte-for-byte undo).
const (
	FindingStubOrphaned = "dns-stub-orphaned"
	FindingJournalLeft  = "dns-journal-left"
	FindingTunnelDNS    = "dns-tunnel-resolver-unreachable"
	FindingResolverLeft = "dns-resolver-stale"
)

// RestoreFixable says whether a finding's fix is Restore.
func RestoreFixable(f analysis.Finding) bool {
	return f.Fixable && (f.ID == FindingStubOrphaned || f.ID == FindingJournalLeft || f.ID == FindingResolverLeft)
}

// Diagnose is doctor's pure DNS check: resolv.conf pointing at a stub no
// agent serves (a crashed session), a DNS journal nobody restored, the
// tunnel's resolvers not answering, DNS routed outside a full tunnel
// (leak.go), a routing domain another resolver configuration claims.
func Diagnose(in DoctorInput) []analysis.Finding {
	var out []analysis.Finding
	ev := func(kind, format string, a ...any) analysis.Evidence {
		return analysis.Evidence{Kind: kind, Text: fmt.Sprintf(format, a...)}
	}
	journal := func() analysis.Evidence {
		return ev("journal", "%s: written by pid %d at %s, holds the %d-byte %s from before `vpn up`", JournalFile, in.Journal.PID, in.Journal.At.Format(time.RFC3339), len(in.Journal.Before), in.Journal.Path)
	}
	pointed := PointsAtStub(in.ResolvConf)
	switch {
	case pointed && !in.AgentStub:
		f := analysis.Finding{ID: "dns-stub-orphaned", Severity: analysis.Error, Owner: "clearpath",
			Title: fmt.Sprintf("%s points at ClearPath's stub resolver %s, but no agent serves it", in.ResolvPath, StubAddr),
			Evidence: []analysis.Evidence{ev("file", "%s: nameserver %s", in.ResolvPath, StubAddr),
				ev("agent", "no running agent has split DNS on")}}
		if in.StubAnswered {
			f.Evidence = append(f.Evidence, ev("lookup", "something else answers on %s:53", StubAddr))
		} else {
			f.Evidence = append(f.Evidence, ev("lookup", "no answer from %s:53: every lookup fails", StubAddr))
		}
		if in.Journal != nil {
			f.Evidence = append(f.Evidence, journal())
			f.Explanation = "A session with split DNS ended without restoring resolv.conf (the agent was killed or the machine lost power), so names do not resolve. The journal holds the file from before: restoring it puts it back byte for byte."
			f.Commands = []string{"vpn routes restore"}
			f.Fixable, f.Ours = true, true
		} else {
			f.Explanation = "resolv.conf names the stub resolver of a ClearPath agent that is not running, and no journal says what was there before, so names do not resolve. Put your network's resolver back (reconnect, or let your network manager rewrite resolv.conf)."
			f.Commands = []string{"edit " + in.ResolvPath + ": replace nameserver " + StubAddr.String() + " with your network's resolver"}
		}
		out = append(out, f)
	case in.Journal != nil && !in.AgentStub:
		out = append(out, analysis.Finding{ID: "dns-journal-left", Severity: analysis.Warning, Owner: "clearpath",
			Title:       "a crashed session's DNS journal was never replayed",
			Evidence:    []analysis.Evidence{journal(), ev("file", "%s no longer points at the stub: it was changed since", in.ResolvPath)},
			Explanation: "resolv.conf was rewritten by something else after ClearPath pointed it at its stub; replaying the journal leaves that file alone and keeps the one from before `vpn up` as " + SavedFile + " in the state dir.",
			Commands:    []string{"vpn routes restore"}, Fixable: true, Ours: true})
	}
	if in.AgentStub && len(in.Unreachable) > 0 {
		out = append(out, analysis.Finding{ID: "dns-tunnel-resolver-unreachable", Severity: analysis.Warning, Owner: "clearpath",
			Title:       fmt.Sprintf("the tunnel's DNS servers %v do not answer", in.Unreachable),
			Evidence:    []analysis.Evidence{ev("lookup", "a query for the routing domain to each of %v through the tunnel got no answer in 2s", in.Unreachable)},
			Explanation: "Names under the routing domains fail (SERVFAIL) while these servers are silent; ClearPath never asks the LAN for them instead. The gateway's network must let clients reach its DNS servers (allow list, or local_ports udp/53 for the gateway's own address), and the servers must run.",
			Commands:    []string{"vpn-gateway doctor (on the gateway)"}})
	}
	if !in.AgentResolver && (len(in.ResolverFiles) > 0 || in.ResolverJournal != nil) {
		f := analysis.Finding{ID: "dns-resolver-stale", Severity: analysis.Error, Owner: "clearpath", Fixable: true, Ours: true,
			Title:       fmt.Sprintf("ClearPath's resolver files are left in %s with no agent running", in.ResolverDir),
			Explanation: "A session with split DNS ended without removing its per-domain resolver files (the agent was killed or the machine lost power), so names under those domains still go to the tunnel's servers, which are unreachable now: they fail. Removing the files (only those still exactly as ClearPath wrote them) puts resolution back as before.",
			Commands:    []string{"vpn routes restore"}}
		for _, p := range in.ResolverFiles {
			f.Evidence = append(f.Evidence, ev("file", "%s: written by ClearPath (its header, nameserver lines only)", p))
		}
		if j := in.ResolverJournal; j != nil {
			f.Evidence = append(f.Evidence, ev("journal", "%s: written by pid %d at %s, lists %d file(s) in %s", ResolverJournalFile, j.PID, j.At.Format(time.RFC3339), len(j.Files), j.Dir))
		}
		f.Evidence = append(f.Evidence, ev("agent", "no running agent has resolver files"))
		out = append(out, f)
	}
	out = append(out, leak(in)...)
	return append(out, conflict(in)...)
}
