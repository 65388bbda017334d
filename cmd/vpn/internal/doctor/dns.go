package doctor

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/miekg/dns"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// dnsFindings adds the split-DNS checks (client/splitdns.Diagnose) for
// this machine: a resolv.conf left pointing at a dead stub, an unreplayed
// DNS journal, the tunnel's resolvers silent. Skipped for --snapshot,
// --no-dns and an Env without a state dir (unit tests of routing).
func dnsFindings(rep analysis.Report, ain analysis.Input, env *Env, o *Options) analysis.Report {
	if env.StateDir == "" || o.Snapshot != "" || o.NoDNS {
		return rep
	}
	path := env.ResolvConf
	if path == "" {
		path = splitdns.DefaultResolvConf
	}
	conf, _ := os.ReadFile(path)
	in := splitdns.DoctorInput{ResolvPath: path, ResolvConf: conf, Now: time.Now()}
	pending, _ := splitdns.Pending(env.StateDir) // unreadable (not root): no journal evidence
	in.Journal = pending.DNS
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
	if env.ResolverDir != "" {
		in.ResolverDir = env.ResolverDir
		in.ResolverFiles = splitdns.OurResolverFiles(env.ResolverDir)
		in.ResolverJournal = pending.Resolver
		in.AgentResolver = d != nil && d.Mode == "resolver"
	}
	dnsRoutes(&in, ain, d)
	o.revert = splitdns.FixableClaims(in)
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

// dnsRoutes fills what the leak and conflict checks look at: with a full
// tunnel up, each resolver queries reach (resolv.conf's nameservers, and
// with our stub in use the tunnel's servers and the stub's upstream for
// names outside the routing domains) with the route the walk picks; the
// session's domains and what else claims them (resolv.conf nameservers
// ahead of the stub, other links' domains in systemd-resolved).
func dnsRoutes(in *splitdns.DoctorInput, ain analysis.Input, d *control.DNSStatus) {
	if ain.Agent != nil {
		in.FullTunnel, in.TunnelDev = ain.Agent.FullTunnel, ain.Agent.Interface
	}
	if in.FullTunnel && ain.Snapshot != nil {
		walk := func(role string, addrs ...string) {
			for _, s := range addrs {
				a, err := netip.ParseAddr(s)
				if err != nil {
					if ap, perr := netip.ParseAddrPort(s); perr == nil {
						a, err = ap.Addr(), nil
					}
				}
				if err != nil || a.IsLoopback() {
					continue
				}
				dec := analysis.Select(ain.Snapshot, analysis.Flow{Dst: a})
				in.Resolvers = append(in.Resolvers, splitdns.ResolverRoute{Addr: a, Role: role,
					Device: dec.Route.Device, Route: dec.Route.String(), Refused: dec.Refused || dec.NoRoute})
			}
		}
		var ns []string
		for _, a := range splitdns.Nameservers(in.ResolvConf) {
			ns = append(ns, a.String())
		}
		walk("resolv.conf nameserver", ns...)
		if in.AgentStub && splitdns.PointsAtStub(in.ResolvConf) {
			walk("tunnel DNS server", d.Servers...)
			if !d.All {
				walk("stub upstream (names outside the routing domains)", d.Upstream...)
			}
		}
	}
	if d == nil || d.Mode == "off" {
		return
	}
	in.Domains, in.Servers, in.All = d.Domains, d.Servers, d.All
	if d.Mode == "stub" {
		in.Claims = splitdns.StubClaims(in.ResolvPath, in.ResolvConf)
	}
	if d.Mode == "resolved" && ain.Snapshot != nil {
		links, skip := map[int]string{}, 0
		for _, l := range ain.Snapshot.Links {
			links[l.Index] = l.Name
			if ain.Agent != nil && l.Name == ain.Agent.Interface {
				skip = l.Index
			}
		}
		if r := splitdns.SystemResolved(in.ResolvPath); r != nil {
			in.Claims, _ = r.Claims(links, skip) // partial claims on error: still evidence
		}
		for i := range in.Claims {
			in.Claims[i].Dead = deadLink(ain.Snapshot, in.Claims[i].Index)
		}
	}
}

// deadLink says why the link carries no traffic ("" alive, or unknown):
// down, no carrier, or a tun no process holds (as dead-tun findings do).
func deadLink(snap *routes.Snapshot, index int) string {
	if index <= 0 {
		return ""
	}
	for _, l := range snap.Links {
		if l.Index != index {
			continue
		}
		switch {
		case l.Tun != nil && l.Tun.Attached == 0:
			return "a tun no process holds"
		case !l.Up:
			return "down"
		case l.NoCarrier:
			return "no carrier"
		}
		return ""
	}
	return ""
}

// revertLink reverts a link's DNS settings in the system's
// systemd-resolved (the resolv.conf at path names its stub).
func revertLink(path string, ifindex int) error {
	r := splitdns.SystemResolved(path)
	if r == nil {
		return fmt.Errorf("%s does not point at systemd-resolved: nothing to revert", path)
	}
	return r.Revert(ifindex)
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
// restore` does; the file comes back only if nobody changed it since. A
// full tunnel's resolv.conf rewritten away from the stub is the running
// agent's to re-point (it holds the journal): doctor asks it.
func fixDNS(w io.Writer, env *Env, rep analysis.Report, o *Options, named map[string]bool) (int, error) {
	total := 0
	for _, fix := range []func(io.Writer, *Env, analysis.Report, *Options, map[string]bool) (int, error){fixLeak, fixConflict, fixJournal} {
		n, err := fix(w, env, rep, o, named)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// fixConflict reverts the DNS settings of the dead systemd-resolved links
// whose stale claims conflict with ours (named --fix only: they are not
// ours); a live link is never among them.
func fixConflict(w io.Writer, env *Env, rep analysis.Report, o *Options, named map[string]bool) (int, error) {
	n := 0
	for _, f := range rep.Findings {
		if !splitdns.RevertFixable(f) || !(f.Ours || named[f.ID]) {
			continue
		}
		path := env.ResolvConf
		if path == "" {
			path = splitdns.DefaultResolvConf
		}
		for i, c := range o.revert {
			if o.DryRun {
				fmt.Fprintf(w, "would run: %s\n", f.Commands[i])
				continue
			}
			if env.RevertLink == nil {
				return n, fmt.Errorf("fix %s: cannot reach systemd-resolved here", f.ID)
			}
			if err := env.RevertLink(path, c.Index); err != nil {
				return n, fmt.Errorf("fix %s: revert %s: %w", f.ID, c.Source, err)
			}
			fmt.Fprintf(w, "fixed (%s): reverted the DNS settings of %s (%s)\n", f.ID, c.Source, c.Dead)
			n++
		}
	}
	return n, nil
}

// fixLeak asks the agent to point resolv.conf back at its stub.
func fixLeak(w io.Writer, env *Env, rep analysis.Report, o *Options, named map[string]bool) (int, error) {
	for _, f := range rep.Findings {
		if !splitdns.RepointFixable(f) || !(f.Ours || named[f.ID]) {
			continue
		}
		if o.DryRun {
			fmt.Fprintf(w, "would run: %s\n", f.Commands[0])
			return 0, nil
		}
		if env.RepointDNS == nil {
			return 0, fmt.Errorf("fix %s: no agent to ask", f.ID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := env.RepointDNS(ctx)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("fix %s: %w", f.ID, err)
		}
		if !res.Changed {
			fmt.Fprintf(w, "fixed (%s): resolv.conf already points at the agent's stub\n", f.ID)
			return 0, nil
		}
		fmt.Fprintf(w, "fixed (%s): resolv.conf points at the agent's stub again; names outside the routing domains go to %v\n", f.ID, res.Upstream)
		return 1, nil
	}
	return 0, nil
}

// fixJournal replays the DNS journal (Restore).
func fixJournal(w io.Writer, env *Env, rep analysis.Report, o *Options, named map[string]bool) (int, error) {
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
		if err == nil && f.ID == splitdns.FindingResolverLeft && env.ResolverDir != "" {
			// Files of ours no journal lists (it was lost): by their header.
			var rm []string
			rm, err = splitdns.RemoveOurResolverFiles(env.ResolverDir)
			res.Resolver.Removed = append(res.Resolver.Removed, rm...)
			if len(rm) > 0 && !res.Journaled {
				res.Journaled, res.Restored = true, true
			}
		}
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
