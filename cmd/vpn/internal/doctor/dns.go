package doctor

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/miekg/dns"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// dnsFindings adds the split-DNS checks (client/splitdns.Diagnose) for
// this machine: a resolv.conf left pointing at a dead stub, an unreplayed
// DNS journal, the tunnel's resolvers silent. Skipped for --snapshot,
// --no-dns and an Env without a state dir (unit tests of routing).
func dnsFindings(rep analysis.Report, env *Env, o *Options) analysis.Report {
	if env.StateDir == "" || o.Snapshot != "" || o.NoDNS {
		return rep
	}
	path := env.ResolvConf
	if path == "" {
		path = splitdns.DefaultResolvConf
	}
	conf, _ := os.ReadFile(path)
	in := splitdns.DoctorInput{ResolvPath: path, ResolvConf: conf, Now: time.Now()}
	in.Journal, _ = splitdns.Pending(env.StateDir) // unreadable (not root): no journal evidence
	d := o.agentDNS
	in.AgentStub = d != nil && d.Mode == "stub"
	stub := netip.AddrPortFrom(splitdns.StubAddr, 53).String()
	if splitdns.PointsAtStub(conf) && !in.AgentStub {
		in.StubAnswered = askDNS(stub, ".", dns.TypeNS) == nil
	}
	if in.AgentStub {
		name := "."
		if len(d.Domains) > 0 {
			name = d.Domains[0]
		}
		for _, s := range d.Servers {
			if a, err := netip.ParseAddr(s); err == nil && askDNS(netip.AddrPortFrom(a, 53).String(), name, dns.TypeSOA) != nil {
				in.Unreachable = append(in.Unreachable, s)
			}
		}
	}
	for _, f := range splitdns.Diagnose(in) {
		rep.Findings = append(rep.Findings, f)
		switch f.Severity {
		case analysis.Error:
			rep.Summary.Errors++
		case analysis.Warning:
			rep.Summary.Warnings++
		default:
			rep.Summary.Infos++
			continue
		}
		rep.Summary.Healthy = false
	}
	return rep
}

// askDNS sends one query and waits 2 s for any answer.
func askDNS(server, name string, qtype uint16) error {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	_, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, server)
	return err
}

// fixDNS replays the DNS journal for the findings whose fix it is (bare
// --fix: they are ours), under the state dir's lock as `vpn routes
// restore` does; the file comes back only if nobody changed it since.
func fixDNS(w io.Writer, env *Env, rep analysis.Report, o *Options, named map[string]bool) (int, error) {
	for _, f := range rep.Findings {
		if !splitdns.RestoreFixable(f) || !(f.Ours || named[f.ID]) {
			continue
		}
		if o.DryRun {
			fmt.Fprintf(w, "would run: %s\n", f.Commands[0])
			return 0, nil
		}
		unlock, err := agent.Lock(env.StateDir, 3*time.Second)
		if err != nil {
			return 0, fmt.Errorf("fix %s: %w", f.ID, err)
		}
		res, err := splitdns.Restore(env.StateDir)
		unlock()
		if err != nil {
			return 0, fmt.Errorf("fix %s: %w", f.ID, err)
		}
		fmt.Fprintf(w, "fixed (%s): %s\n", f.ID, res.Message())
		return 1, nil
	}
	return 0, nil
}

// keepAgentDNS remembers the agent's DNS status for dnsFindings.
func keepAgentDNS(o *Options, st *control.Status) {
	if st != nil {
		o.agentDNS = st.DNS
	}
}
