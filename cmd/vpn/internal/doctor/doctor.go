// Package doctor implements `vpn doctor`: gather the live routing state,
// run the pure analysis, print verdicts, and apply fixes on request.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/client/tunnel"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// Options are the inputs of `vpn doctor`.
type Options struct {
	JSON     bool
	Fix      string // "" no fix; "ours": our leftovers; else comma-separated finding ids
	DryRun   bool
	Snapshot string // analyze a recorded snapshot instead of this machine
	NoDNS    bool
	Bundle   string // write a redacted support bundle to this new file
	blocked  string // the agent's account of a fail-closed block
	agentDNS *control.DNSStatus
	// revert are the dead resolved links whose stale domain claims
	// dns-domain-conflict's fix reverts (dnsFindings fills it).
	revert []splitdns.DomainClaim
	status *control.Status
}

// Env is the live system doctor reads and fixes; tests swap it.
type Env struct {
	System  func() (routes.System, error)
	Agent   func(ctx context.Context) (*control.Status, error)
	Sysctl  func(key string) string
	DNS     func() []netip.Addr
	Now     func() time.Time
	StateOK func() bool // a route session is journaled (agent or crash)
	// Running reports whether an agent holds the state dir's lock (alive,
	// though its socket may not answer); nil: not checked.
	Running func() (pid int, running, known bool)
	// StateDir and ResolvConf are where the split-DNS checks look
	// (dns.go); no StateDir: not checked. ResolverDir: macOS's
	// /etc/resolver ("" elsewhere: not checked).
	StateDir, ResolvConf, ResolverDir string
	// PathMTU measures the path MTU from src to dst through the tunnel
	// (tunnel.PathMTU); nil: not measured (not root: raw ICMP).
	PathMTU func(ctx context.Context, src, dst netip.Addr, hi int) (int, error)
	// AgentLog returns the end of the agent's log (for --bundle).
	AgentLog func() ([]byte, error)
	// RepointDNS asks the agent to point resolv.conf back at its stub
	// (control POST /v1/dns/repoint); nil: the DNS leak has no fix here.
	RepointDNS func(ctx context.Context) (*control.RepointReport, error)
	// RevertLink reverts a systemd-resolved link's DNS settings
	// (RevertLink over D-Bus); nil: dns-domain-conflict has no fix here.
	RevertLink func(resolvConf string, ifindex int) error
}

// NewCmd returns `vpn doctor`.
func NewCmd(f *factory.Factory, env *Env) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Diagnose broken routing: each problem with its evidence, its cause and its fix",
		Long: `Checks the routing table, policy rules, tunnel and DNS for what breaks networks:
leftovers of crashed VPN clients (ours and others'), dead tunnel devices, orphan rules,
hijacked or missing default routes, IPv6 leaks, overlaps with the LAN, endpoint loops,
rule priority clashes with other VPNs, rp_filter, MTU, stale handshakes, dead DNS.

Exit status: 0 healthy, 1 a warning or error was found, 2 doctor itself failed.
--fix repairs ClearPath's own leftovers; --fix ID[,ID] also repairs the named findings.`,
		// `--fix ID` reads the way users type it: with a bare --fix the ids
		// arrive as arguments (the flag's optional value needs --fix=ID).
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && o.Fix != "ours" {
				return fmt.Errorf("unexpected argument %q: finding ids go after --fix (vpn doctor --fix %s)", args[0], strings.Join(args, ","))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				o.Fix = strings.Join(args, ",")
			}
			e := env
			if e == nil {
				e = LiveEnv(f)
			}
			return Run(cmd.Context(), f.Out, e, o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the report as JSON (schema "+analysis.Schema+")")
	cmd.Flags().StringVar(&o.Fix, "fix", "", "apply fixes: bare --fix for ClearPath's leftovers, --fix ID[,ID] for named findings")
	cmd.Flags().Lookup("fix").NoOptDefVal = "ours"
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "with --fix: print the changes without making them")
	cmd.Flags().StringVar(&o.Snapshot, "snapshot", "", "analyze a snapshot file (vpn routes snapshot -o) instead of this machine")
	cmd.Flags().BoolVar(&o.NoDNS, "no-dns", false, "skip the DNS reachability check")
	cmd.Flags().StringVar(&o.Bundle, "bundle", "", "also write a support bundle to this new file (tar.gz: report, snapshot, agent status and log, versions; user names, tokens, keys and public addresses redacted)")
	return cmd
}

// LiveEnv reads this machine.
func LiveEnv(f *factory.Factory) *Env {
	e := &Env{
		System:     routes.NewSystem,
		Agent:      f.Control().Status,
		RepointDNS: f.Control().RepointDNS,
		RevertLink: revertLink,
		Running:    func() (int, bool, bool) { return agent.Running(f.StateDir) },
		Sysctl: func(key string) string {
			b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(b))
		},
		DNS:      func() []netip.Addr { return routes.ReadResolvers("/etc/resolv.conf") },
		Now:      time.Now,
		StateDir: f.StateDir,
	}
	if runtime.GOOS == "darwin" {
		e.ResolverDir = splitdns.DefaultResolverDir
	}
	if os.Geteuid() == 0 {
		e.PathMTU = tunnel.PathMTU
	}
	e.AgentLog = func() ([]byte, error) { return tailFile(filepath.Join(f.StateDir, "agent.log"), agentLogTail) }
	return e
}

// Run gathers, analyzes, prints and fixes.
func Run(ctx context.Context, w io.Writer, env *Env, o *Options) error {
	in, sys, err := gather(ctx, env, o)
	if err != nil {
		return cmdutil.Exit(2, fmt.Errorf("doctor: %w", err))
	}
	rep := dnsFindings(blockedFinding(analysis.Analyze(in), o), in, env, o)
	if o.Fix != "" {
		if sys == nil {
			return cmdutil.Exit(2, errors.New("doctor: --fix works on this machine, not on a --snapshot file"))
		}
		applied, err := fix(w, env, sys, rep, o)
		var ee *cmdutil.ExitError
		if errors.As(err, &ee) {
			return ee
		}
		if err != nil {
			return cmdutil.Exit(2, err)
		}
		if applied > 0 && !o.DryRun {
			if in, _, err = gather(ctx, env, o); err != nil {
				return cmdutil.Exit(2, err)
			}
			rep = dnsFindings(blockedFinding(analysis.Analyze(in), o), in, env, o)
		}
	}
	if o.Bundle != "" {
		note, err := writeBundle(o.Bundle, env, rep, in, o.status, env.Now())
		if err != nil {
			return cmdutil.Exit(2, err)
		}
		fmt.Fprintf(w, "support bundle written to %s (%s)\n", o.Bundle, note)
	}
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return cmdutil.Exit(2, err)
		}
	} else {
		Print(w, rep)
	}
	if code := rep.ExitCode(); code != 0 {
		return cmdutil.Exit(code, nil) // the report said it all
	}
	return nil
}

func gather(ctx context.Context, env *Env, o *Options) (analysis.Input, routes.System, error) {
	in := analysis.Input{Now: env.Now(), Sysctls: map[string]string{}}
	if o.Snapshot != "" {
		b, err := os.ReadFile(o.Snapshot)
		if err != nil {
			return in, nil, err
		}
		var s routes.Snapshot
		if err := json.Unmarshal(b, &s); err != nil {
			return in, nil, fmt.Errorf("%s is not a snapshot: %w", o.Snapshot, err)
		}
		in.Snapshot = &s
		return in, nil, nil
	}
	sys, err := env.System()
	if err != nil {
		return in, nil, err
	}
	if in.Snapshot, err = sys.Snapshot(); err != nil {
		return in, nil, err
	}
	st, err := env.Agent(ctx)
	if err == nil {
		o.status = st
	}
	switch {
	case errors.Is(err, control.ErrNoAccess):
		// Without the agent's view every route of ours would look like a
		// leftover, and the fix would cut a live tunnel.
		return in, nil, fmt.Errorf("cannot ask the agent: %w", err)
	case errors.Is(err, control.ErrNoAgent) && env.Running != nil:
		if pid, running, _ := env.Running(); running {
			return in, nil, fmt.Errorf("an agent (pid %d) holds the state dir but does not answer on its socket: its routes are not leftovers; check it (or stop it) before running doctor", pid)
		}
	case err == nil && (st.State == control.StateUp || st.State == control.StateBlocked):
		keepAgentDNS(o, st)
		in.Agent = agentState(st, in.Snapshot)
		if env.PathMTU != nil && st.State == control.StateUp {
			in.PathProbes = probePaths(ctx, env, in.Agent, st.GatewayAddresses)
		}
		o.blocked = ""
		if st.State == control.StateBlocked {
			o.blocked = st.Error
		}
	}
	keys := []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.all.src_valid_mark"}
	if in.Agent != nil {
		keys = append(keys, "net.ipv4.conf."+in.Agent.Interface+".rp_filter")
	}
	for _, k := range keys {
		in.Sysctls[k] = env.Sysctl(k)
	}
	if !o.NoDNS {
		in.DNS = env.DNS()
	}
	return in, sys, nil
}

func agentState(st *control.Status, snap *routes.Snapshot) *analysis.AgentState {
	a := &analysis.AgentState{Interface: st.Interface, FullTunnel: st.FullTunnel, RouteLAN: st.RouteLAN}
	for _, s := range st.Addresses {
		if p, err := netip.ParsePrefix(s); err == nil {
			a.Addresses = append(a.Addresses, p)
		}
	}
	for _, s := range st.AllowedIPs {
		if p, err := netip.ParsePrefix(s); err == nil {
			a.Prefixes = append(a.Prefixes, p)
		}
	}
	if st.FullTunnel {
		a.Prefixes = append(a.Prefixes, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
	}
	if ep, err := netip.ParseAddrPort(st.Endpoint); err == nil {
		a.Endpoint = ep
	}
	if st.LatestHandshake != nil {
		a.LastHandshake = *st.LatestHandshake
	}
	for _, l := range snap.Links {
		if l.Name == st.Interface {
			a.MTU = l.MTU
		}
	}
	return a
}

func fix(w io.Writer, env *Env, sys routes.System, rep analysis.Report, o *Options) (int, error) {
	named := map[string]bool{}
	if o.Fix != "ours" {
		for _, id := range strings.Split(o.Fix, ",") {
			named[strings.TrimSpace(id)] = true
		}
		present := map[string]bool{}
		var now []string
		for _, f := range rep.Findings {
			if !present[f.ID] {
				now = append(now, f.ID)
			}
			present[f.ID] = true
		}
		var unknown []string
		for _, id := range strings.Split(o.Fix, ",") {
			id = strings.TrimSpace(id)
			if !present[id] && !analysis.KnownID(id) && !slices.Contains(unknown, id) {
				unknown = append(unknown, id)
			}
		}
		if len(unknown) > 0 {
			// A typo must not pass for "nothing to fix": nothing is
			// applied and the exit status is 2 (doctor failed).
			return 0, cmdutil.Exit(2, fmt.Errorf("--fix %s: no finding has this id; findings now: %s (every id: %s)",
				strings.Join(unknown, ","), orNone(now), strings.Join(analysis.IDs, ", ")))
		}
		for id := range named {
			if !present[id] {
				fmt.Fprintf(w, "--fix %s: no such finding now; nothing to do for it\n", id)
			}
		}
	}
	applied, err := fixDNS(w, env, rep, o, named)
	if err != nil {
		return applied, err
	}
	for _, f := range rep.Findings {
		if !f.Fixable || !(f.Ours || named[f.ID]) {
			continue
		}
		for i, ch := range f.Fix {
			if o.DryRun {
				fmt.Fprintf(w, "would run: %s\n", f.Commands[i])
				continue
			}
			if err := sys.Apply(ch); err != nil {
				return applied, fmt.Errorf("fix %s: %s: %w", f.ID, f.Commands[i], err)
			}
			fmt.Fprintf(w, "fixed (%s): %s\n", f.ID, f.Commands[i])
			applied++
		}
	}
	if applied == 0 && !o.DryRun {
		fmt.Fprintln(w, "nothing to fix automatically")
	}
	return applied, nil
}

// Print renders a report for people.
func Print(w io.Writer, rep analysis.Report) {
	defer printPathMTU(w, rep.PathMTU)
	if len(rep.Findings) == 0 {
		fmt.Fprintln(w, "✓ routing looks healthy: no problems found")
		return
	}
	mark := map[string]string{analysis.Error: "✗", analysis.Warning: "!", analysis.Info: "i"}
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%s %-7s %s: %s\n", mark[f.Severity], f.Severity, f.ID, f.Title)
		if f.Owner != "" && f.Owner != "unknown" {
			fmt.Fprintf(w, "  owner: %s\n", f.Owner)
		}
		if len(f.Evidence) > 0 {
			fmt.Fprintln(w, "  evidence:")
			for _, e := range f.Evidence {
				fmt.Fprintf(w, "    %s\n", e.Text)
			}
		}
		fmt.Fprintf(w, "  why: %s\n", f.Explanation)
		if len(f.Commands) > 0 {
			how := "run these, or"
			switch {
			case f.Fixable && f.Ours:
				how = "`vpn doctor --fix` runs these"
			case f.Fixable:
				how = fmt.Sprintf("`vpn doctor --fix %s` runs these", f.ID)
			}
			fmt.Fprintf(w, "  fix (%s):\n", how)
			for _, c := range f.Commands {
				fmt.Fprintf(w, "    %s\n", c)
			}
		}
		fmt.Fprintln(w)
	}
	s := rep.Summary
	fmt.Fprintf(w, "%d errors, %d warnings, %d notes\n", s.Errors, s.Warnings, s.Infos)
}

// blockedFinding reports a fail-closed agent: its full tunnel's routes are
// kept on purpose after the registration expired, so traffic is blocked.
func blockedFinding(rep analysis.Report, o *Options) analysis.Report {
	if o.blocked == "" {
		return rep
	}
	f := analysis.Finding{ID: "fail-closed-block", Severity: "warning", Owner: "clearpath",
		Title:       "all traffic is blocked: the registration expired and the session is fail-closed",
		Explanation: o.blocked}
	rep.Findings = append([]analysis.Finding{f}, rep.Findings...)
	rep.Summary.Warnings++
	rep.Summary.Healthy = false
	return rep
}

func orNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// probePaths measures the path MTU through the tunnel to each of the
// gateway's tunnel addresses we have a source address for.
func probePaths(ctx context.Context, env *Env, a *analysis.AgentState, gateway []string) []analysis.PathProbe {
	var out []analysis.PathProbe
	for _, g := range gateway {
		dst, err := netip.ParseAddr(g)
		if err != nil || a.MTU < tunnel.MinPathMTU {
			continue
		}
		for _, src := range a.Addresses {
			if src.Addr().Is4() != dst.Is4() {
				continue
			}
			p := analysis.PathProbe{Source: src.Addr(), Target: dst}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if p.Largest, err = env.PathMTU(pctx, src.Addr(), dst, a.MTU); err != nil {
				p.Error = err.Error()
			}
			cancel()
			out = append(out, p)
			break
		}
	}
	return out
}

func printPathMTU(w io.Writer, ps []analysis.PathProbe) {
	for _, p := range ps {
		if p.Largest > 0 {
			fmt.Fprintf(w, "path MTU through the tunnel to %s: %d bytes\n", p.Target, p.Largest)
		} else {
			fmt.Fprintf(w, "path MTU through the tunnel to %s: not measured (%s)\n", p.Target, p.Error)
		}
	}
}
