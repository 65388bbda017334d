// Package analysis is the pure core of `vpn doctor`: a routing snapshot and
// the agent's state in, findings out. Each finding names a problem with a
// stable id, shows the exact routes and rules involved, explains it and
// carries the changes that fix it. Nothing here reads or changes the live
// system, so every check is tested on fixture snapshots, macOS ones too.
package analysis

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/routes"
)

// Schema names the JSON format of a Report; bump it on incompatible change.
const Schema = "clearpath.doctor/v1"

// Severities.
const (
	Info    = "info"
	Warning = "warning"
	Error   = "error"
)

// AgentState is what the running agent knows (nil in Input: none runs).
type AgentState struct {
	Interface     string         `json:"interface"`
	Addresses     []netip.Prefix `json:"addresses"`
	Endpoint      netip.AddrPort `json:"endpoint"`
	Prefixes      []netip.Prefix `json:"prefixes"`
	FullTunnel    bool           `json:"full_tunnel"`
	RouteLAN      bool           `json:"route_lan,omitempty"`
	LastHandshake time.Time      `json:"last_handshake"`
	MTU           int            `json:"mtu"`
	PathMTU       int            `json:"path_mtu,omitempty"` // 0 = unknown
}

// Input is everything the analysis looks at.
type Input struct {
	Snapshot *routes.Snapshot
	Agent    *AgentState
	// Sysctls holds values such as "net.ipv4.conf.all.rp_filter".
	Sysctls map[string]string
	// DNS are the resolvers the system uses (resolv.conf).
	DNS []netip.Addr
	Now time.Time
	// PathProbes are path MTU measurements through the tunnel (pathmtu.go).
	PathProbes []PathProbe
}

// Evidence is one item a finding is based on.
type Evidence struct {
	Kind  string        `json:"kind"` // route, rule, lookup, sysctl, link, address
	Text  string        `json:"text"`
	Route *routes.Route `json:"route,omitempty"`
	Rule  *routes.Rule  `json:"rule,omitempty"`
}

// Finding is one diagnosed problem.
type Finding struct {
	ID          string          `json:"id"`
	Severity    string          `json:"severity"`
	Title       string          `json:"title"`
	Owner       string          `json:"owner"` // clearpath, wg-quick, tailscale, openvpn, unknown...
	Evidence    []Evidence      `json:"evidence"`
	Explanation string          `json:"explanation"`
	Fix         []routes.Change `json:"fix,omitempty"`
	Commands    []string        `json:"commands,omitempty"`
	// Fixable: Fix is safe to apply. Ours: bare `--fix` applies it;
	// others only when named (`--fix ID`).
	Fixable bool `json:"fixable"`
	Ours    bool `json:"ours"`
	// Network names the gateway network a finding is about (vpn-gateway
	// doctor only).
	Network string `json:"network,omitempty"`
	// Cloud lists routes to add outside the host, in the route table of a
	// VPC, as "destination -> target" (vpn-gateway doctor only).
	Cloud []string `json:"cloud,omitempty"`
}

// Summary counts findings by severity.
type Summary struct {
	Errors   int  `json:"errors"`
	Warnings int  `json:"warnings"`
	Infos    int  `json:"infos"`
	Passed   int  `json:"passed,omitempty"` // checks that passed (severity "ok"; vpn-gateway doctor)
	Healthy  bool `json:"healthy"`
}

// Report is the doctor's answer.
type Report struct {
	Schema   string    `json:"schema"`
	OS       string    `json:"os"`
	Findings []Finding `json:"findings"`
	Summary  Summary   `json:"summary"`
	// PathMTU are the path MTU probes through the tunnel, when made.
	PathMTU []PathProbe `json:"path_mtu,omitempty"`
}

// ExitCode is 0 when healthy (info at most), 1 with a warning or worse.
func (r Report) ExitCode() int {
	if r.Summary.Healthy {
		return 0
	}
	return 1
}

// Analyze runs every check.
func Analyze(in Input) Report {
	if in.Snapshot == nil {
		in.Snapshot = &routes.Snapshot{}
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	c := &checker{in: in, snap: in.Snapshot, links: map[string]routes.Link{}}
	for _, l := range in.Snapshot.Links {
		c.links[l.Name] = l
	}
	c.leftoverOwned()
	c.deadDeviceRoutes()
	c.deadTunnels()
	c.orphanRules()
	c.staleEndpointRoutes()
	c.endpointPins()
	c.defaults()
	c.ipv6Leak()
	c.overlaps()
	c.endpointLoop()
	c.rulePriorities()
	c.rpFilter()
	c.mtu()
	c.pathMTU()
	c.tunnelAddresses()
	c.handshake()
	c.dns()
	rep := Report{Schema: Schema, OS: in.Snapshot.OS, Findings: c.out, PathMTU: in.PathProbes}
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	sev := map[string]int{Error: 0, Warning: 1, Info: 2}
	sort.SliceStable(rep.Findings, func(i, j int) bool { return sev[rep.Findings[i].Severity] < sev[rep.Findings[j].Severity] })
	for _, f := range rep.Findings {
		switch f.Severity {
		case Error:
			rep.Summary.Errors++
		case Warning:
			rep.Summary.Warnings++
		default:
			rep.Summary.Infos++
		}
	}
	rep.Summary.Healthy = rep.Summary.Errors+rep.Summary.Warnings == 0
	return rep
}

type checker struct {
	in    Input
	snap  *routes.Snapshot
	links map[string]routes.Link
	out   []Finding
}

func (c *checker) add(f Finding) {
	for _, ch := range f.Fix {
		f.Commands = append(f.Commands, command(c.snap.OS, ch))
	}
	c.out = append(c.out, f)
}

func (c *checker) darwin() bool { return c.snap.OS == "darwin" }

func routeEv(r routes.Route) Evidence {
	return Evidence{Kind: "route", Text: display(r), Route: &r}
}

func ruleEv(r routes.Rule) Evidence { return Evidence{Kind: "rule", Text: r.String(), Rule: &r} }

func display(r routes.Route) string {
	s := r.String()
	var letters, words []string
	for _, f := range r.Flags {
		switch {
		case strings.HasPrefix(f, "gw:"):
			words = append(words, "gateway "+strings.TrimPrefix(f, "gw:"))
		case f == "IFSCOPE":
			if d := flagValue(r, routes.FlagScopeDevice); d != "" {
				words = append(words, "ifscope "+d)
			} else {
				words = append(words, "ifscope "+r.Device)
			}
		case strings.HasPrefix(f, routes.FlagScopeDevice):
		case len(f) <= 2:
			letters = append(letters, f)
		default:
			words = append(words, f)
		}
	}
	if len(letters) > 0 {
		s += " flags " + strings.Join(letters, "")
	}
	if len(words) > 0 {
		s += " " + strings.Join(words, " ")
	}
	return s
}

func delRoute(r routes.Route) routes.Change { return routes.Change{Op: routes.OpDelRoute, Route: &r} }
func delRule(r routes.Rule) routes.Change   { return routes.Change{Op: routes.OpDelRule, Rule: &r} }

// command renders a change as the command a user would type.
func command(os string, ch routes.Change) string {
	if os != "darwin" || ch.Route == nil {
		return ch.String()
	}
	r := ch.Route
	verb := "add"
	if ch.Op == routes.OpDelRoute {
		verb = "delete"
	}
	fam := "-inet"
	if r.Dst.Addr().Is6() {
		fam = "-inet6"
	}
	scope := r.Device
	if d := flagValue(*r, routes.FlagScopeDevice); d != "" {
		scope = d
	}
	dst := r.Dst.String()
	switch {
	case r.Dst.Bits() == 0:
		dst = "default"
	case r.Dst.IsSingleIP():
		dst = r.Dst.Addr().String() // route(8) takes a bare address as a host
	}
	if r.Dst.Addr().IsLinkLocalUnicast() && scope != "" {
		// netstat's spelling (fe80::%utun3/64), which route(8) reads back
		dst = r.Dst.Addr().String() + "%" + scope
		if !r.Dst.IsSingleIP() {
			dst += fmt.Sprintf("/%d", r.Dst.Bits())
		}
	}
	s := fmt.Sprintf("sudo route -n %s %s %s", verb, fam, dst)
	if r.Gateway.IsValid() {
		gw := r.Gateway.String()
		if r.Gateway.IsLinkLocalUnicast() {
			if d := gatewayDevice(*r); d != "" {
				gw += "%" + d
			} else if r.Device != "" {
				gw += "%" + r.Device
			}
		}
		s += " " + gw
	} else if r.Device != "" {
		s += " -interface " + r.Device
	}
	if scoped(*r) && scope != "" {
		s += " -ifscope " + scope
	}
	if strings.Contains(s, "link#") {
		// The interface is gone: route(8) selects scoped routes by
		// interface name only, and guessing without the scope would
		// delete the machine's own unscoped route. The route socket
		// still selects it by index.
		return "# " + s + "  (interface gone: route(8) cannot name it, vpn doctor --fix can)"
	}
	return s
}

func flagValue(r routes.Route, prefix string) string {
	for _, f := range r.Flags {
		if v, ok := strings.CutPrefix(f, prefix); ok {
			return v
		}
	}
	return ""
}

// tunnelKinds are the link types that carry VPN tunnels (Linux netlink
// kinds, and the macOS backend's utun, gif and ppp).
var tunnelKinds = []string{"tun", "tuntap", "wireguard", "ppp", "ipip", "gre", "gretap", "ip6gre", "sit", "ip6tnl", "vti", "vti6", "xfrm", "utun", "gif"}

// tunnelLike reports whether a device is a VPN tunnel: by its link type
// where the snapshot knows it, by its name otherwise (fixtures and foreign
// snapshots may lack the type; macOS says "other" for some kinds).
func (c *checker) tunnelLike(name string) bool {
	for _, l := range c.snap.Links {
		if l.Name == name && l.Type != "" && l.Type != "other" {
			return slices.Contains(tunnelKinds, l.Type)
		}
	}
	return tunnelName(name)
}

func tunnelName(name string) bool {
	for _, p := range []string{"utun", "tun", "wg", "cp", "tailscale", "ts", "nordlynx", "proton", "mullvad", "ppp", "ipsec"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ownerOfDevice guesses which VPN a tunnel device belongs to.
func ownerOfDevice(name string) string {
	switch {
	case strings.HasPrefix(name, "tailscale"):
		return "tailscale"
	case strings.HasPrefix(name, "wg"):
		return "wireguard"
	case strings.HasPrefix(name, "utun"), strings.HasPrefix(name, "tun"):
		return "a VPN client (OpenVPN, Tunnelblick, WireGuard app...)"
	}
	return "unknown"
}

// ownerOfRule names the VPN known to use a rule's priority and table.
func ownerOfRule(r routes.Rule) string {
	switch {
	case r.Protocol == routes.Protocol:
		return "clearpath"
	case r.Priority >= 5210 && r.Priority <= 5270 || r.Table == 52:
		return "tailscale"
	case r.Priority == 32764 || r.Priority == 32765 || r.Table == 51820:
		return "wg-quick"
	case r.Priority == 105 || r.Priority == 110:
		return "netbird"
	case r.Priority >= 100 && r.Priority <= 300:
		return "firezone"
	case r.Table == 1836018789 || r.FwMark == 0x6d6f6c65:
		return "mullvad"
	}
	return "unknown"
}

func (c *checker) leftoverOwned() {
	if c.in.Agent != nil {
		return
	}
	rs, rules := routes.OwnedItems(c.snap)
	if len(rs)+len(rules) == 0 {
		return
	}
	f := Finding{ID: "leftover-owned", Severity: Error, Owner: "clearpath", Fixable: true, Ours: true,
		Title: counted(len(rs), "route", len(rules), "rule") + " of ClearPath remain, but no agent runs",
		Explanation: "A ClearPath session ended without cleaning up (the agent was killed or the machine lost power). " +
			"These routes and rules can send traffic into a tunnel that no longer exists. They carry ClearPath's protocol " +
			"number (197), so they are ours and safe to remove; `vpn down` or `vpn doctor --fix` removes them."}
	for _, r := range rs {
		f.Evidence = append(f.Evidence, routeEv(r))
		f.Fix = append(f.Fix, delRoute(r))
	}
	for _, r := range rules {
		f.Evidence = append(f.Evidence, ruleEv(r))
		f.Fix = append(f.Fix, delRule(r))
	}
	c.add(f)
}

// counted says "2 routes and 1 rule", leaving out a count of zero.
func counted(n1 int, what1 string, n2 int, what2 string) string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{n1, what1}, {n2, what2}} {
		if c.n == 1 {
			parts = append(parts, "1 "+c.what)
		} else if c.n > 1 {
			parts = append(parts, fmt.Sprintf("%d %ss", c.n, c.what))
		}
	}
	return strings.Join(parts, " and ")
}

func (c *checker) deviceDead(dev string) (bool, string) {
	if dev == "" || dev == "lo" || dev == "lo0" {
		return false, ""
	}
	l, ok := c.links[dev]
	if !ok {
		return true, "no longer exists"
	}
	if !l.Up {
		return true, "is down"
	}
	return false, ""
}

// gatewayDevice is the device a route's gateway names on macOS, where lo0
// routes left by a VPN point at a utun as their gateway.
func gatewayDevice(r routes.Route) string {
	for _, f := range r.Flags {
		if d, ok := strings.CutPrefix(f, "gw:"); ok {
			return d
		}
	}
	return ""
}

func (c *checker) deadDeviceRoutes() {
	byDev := map[string][]routes.Route{}
	why := map[string]string{}
	for _, r := range c.snap.Routes {
		if r.Protocol == routes.Protocol && c.in.Agent == nil {
			continue // reported as leftover-owned
		}
		if r.Table == 255 || r.Type == routes.TypeLocal || r.Type == routes.TypeBroadcast || r.Type == routes.TypeMulticast {
			continue
		}
		dev := r.Device
		if g := gatewayDevice(r); g != "" {
			dev = g
		}
		if dead, reason := c.deviceDead(dev); dead {
			byDev[dev] = append(byDev[dev], r)
			why[dev] = reason
		}
	}
	devs := make([]string, 0, len(byDev))
	for d := range byDev {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, d := range devs {
		rs := byDev[d]
		sev := Warning
		for _, r := range rs {
			if r.Dst.Bits() <= 1 {
				sev = Error // a default or half-default into nothing: traffic blackholed
			}
		}
		f := Finding{ID: "dead-device-route", Severity: sev, Owner: ownerOfDevice(d), Fixable: true,
			Title: fmt.Sprintf("%d routes point at %s, which %s", len(rs), d, why[d]),
			Explanation: fmt.Sprintf("Traffic to these destinations is sent to %s, which %s, so it is lost. "+
				"This is what a VPN client leaves behind when it is force-quit (on macOS: routes via a dead utun, "+
				"including IPv6 routes scoped to it). Removing them lets the normal routes take over again.", d, why[d])}
		for _, r := range rs {
			f.Evidence = append(f.Evidence, routeEv(r))
			f.Fix = append(f.Fix, delRoute(r))
		}
		c.add(f)
	}
}

func (c *checker) tableHasRoutes(table int, fam routes.Family) bool {
	for _, r := range c.snap.Routes {
		if r.Table == table && r.Family == fam {
			return true
		}
	}
	return false
}

func (c *checker) orphanRules() {
	var orphans []routes.Rule
	for _, r := range c.snap.Rules {
		if r.Protocol == routes.Protocol && c.in.Agent == nil {
			continue
		}
		if (r.Action == "" || r.Action == "lookup") && r.Table != 253 && r.Table != 254 && r.Table != 255 && !c.tableHasRoutes(r.Table, r.Family) {
			orphans = append(orphans, r)
		}
	}
	// wg-quick pairs `not fwmark X lookup T` with `lookup main
	// suppress_prefixlength 0` one priority lower: orphaned together.
	for _, o := range slices.Clone(orphans) {
		if o.Invert && o.FwMark != 0 {
			for _, r := range c.snap.Rules {
				if r.Family == o.Family && r.Priority == o.Priority-1 && r.Table == 254 && r.SuppressPrefixLen == 0 {
					orphans = append(orphans, r)
				}
			}
		}
	}
	if len(orphans) == 0 {
		return
	}
	owner := ownerOfRule(orphans[0])
	f := Finding{ID: "orphan-rule", Severity: Warning, Owner: owner, Fixable: true,
		Title: fmt.Sprintf("%d policy rules point at empty routing tables", len(orphans)),
		Explanation: "These rules send traffic to tables that hold no routes: the VPN that made them (" + owner + ") is gone. " +
			"They do nothing useful and can hide a real routing decision later (wg-quick's suppress_prefixlength rule " +
			"ignores the default route for everyone). Removing them is safe."}
	for _, r := range orphans {
		f.Evidence = append(f.Evidence, ruleEv(r))
		f.Fix = append(f.Fix, delRule(r))
	}
	c.add(f)
}

func (c *checker) defaultRoutes(v6 bool) []routes.Route {
	var out []routes.Route
	for _, r := range c.snap.Routes {
		if r.Dst.Bits() == 0 && r.Dst.Addr().Is6() == v6 && r.Type == routes.TypeUnicast && (r.Table == 254 || c.darwin() || r.Table == 0) {
			out = append(out, r)
		}
	}
	return out
}

func (c *checker) liveTunnel() bool {
	for _, l := range c.snap.Links {
		if c.tunnelLike(l.Name) && l.Up {
			return true
		}
	}
	return false
}

func (c *checker) staleEndpointRoutes() {
	if c.liveTunnel() {
		return
	}
	gws := map[netip.Addr]bool{}
	for _, v6 := range []bool{false, true} {
		for _, d := range c.defaultRoutes(v6) {
			if d.Gateway.IsValid() && !scoped(d) {
				gws[d.Gateway] = true
			}
		}
	}
	var stale []routes.Route
	for _, r := range c.snap.Routes {
		if !r.Dst.IsSingleIP() || !gws[r.Gateway] || r.Protocol == routes.Protocol || r.Table == 255 {
			continue
		}
		static := r.Protocol == 3 || r.Protocol == 4 || slices.Contains(r.Flags, "S")
		if static && !r.Dst.Addr().IsPrivate() && !r.Dst.Addr().IsLoopback() {
			stale = append(stale, r)
		}
	}
	for _, r := range stale {
		c.add(Finding{ID: "stale-endpoint-route", Severity: Warning, Owner: "unknown (a VPN client)", Fixable: true,
			Title: fmt.Sprintf("host route to %s via the default gateway, but no VPN tunnel is up", r.Dst.Addr()),
			Explanation: "VPN clients pin their server's address to the physical gateway while connected. With no tunnel up " +
				"this route is a leftover: usually harmless, but it goes stale when you change networks (the old gateway " +
				"does not exist on the new one) and breaks reaching that host.",
			Evidence: []Evidence{routeEv(r)}, Fix: []routes.Change{delRoute(r)}})
	}
}

var (
	probe4 = netip.MustParseAddr("192.0.2.200")
	probe6 = netip.MustParseAddr("2001:db8:ffff::200")
)

func (c *checker) hasGlobal(v6 bool) bool {
	for _, a := range c.snap.Addresses {
		ip := a.Prefix.Addr()
		if ip.Is6() == v6 && ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast() && a.Device != "lo" && a.Device != "lo0" {
			if !v6 || !ip.IsPrivate() { // an IPv6 ULA alone reaches no internet
				return true
			}
		}
	}
	return false
}

func (c *checker) defaults() {
	for _, v6 := range []bool{false, true} {
		fam, probe := "IPv4", probe4
		if v6 {
			fam, probe = "IPv6", probe6
		}
		defs := c.defaultRoutes(v6)
		d := Select(c.snap, Flow{Dst: probe})
		if d.NoRoute && c.hasGlobal(v6) && !(v6 && c.in.Agent != nil) {
			sev := Error
			if v6 {
				sev = Warning
			}
			c.add(Finding{ID: "default-missing", Severity: sev, Owner: "unknown",
				Title:       fmt.Sprintf("no default route for %s: the internet is unreachable", fam),
				Explanation: fmt.Sprintf("The machine has a global %s address but no route for destinations outside its networks. Something deleted the default route (a VPN client restoring badly, or a DHCP client that crashed). Renew the lease or add the route back via your router.", fam),
				Evidence:    []Evidence{{Kind: "lookup", Text: fmt.Sprintf("route get %s: no route", probe)}}})
		}
		if d.Refused && !d.NoRoute && c.in.Agent == nil {
			c.add(Finding{ID: "default-hijack", Severity: Error, Owner: "unknown",
				Title:       fmt.Sprintf("%s internet traffic is refused (%s)", fam, d.Route.Type),
				Explanation: "The route the kernel picks for the internet is a " + string(d.Route.Type) + " route: every connection fails at once. A VPN kill switch left behind does this.",
				Evidence:    []Evidence{{Kind: "lookup", Text: fmt.Sprintf("route get %s -> %s", probe, display(d.Route))}, routeEv(d.Route)},
				Fix:         []routes.Change{delRoute(d.Route)}, Fixable: true})
		}
		unscoped := 0
		var ev []Evidence
		metrics := map[int]int{}
		for _, r := range defs {
			if !scoped(r) {
				unscoped++
				metrics[r.Metric]++
				ev = append(ev, routeEv(r))
			}
		}
		dup := false
		for _, n := range metrics {
			if n > 1 {
				dup = true
			}
		}
		if unscoped > 1 && (dup || c.darwin()) {
			c.add(Finding{ID: "default-duplicate", Severity: Warning, Owner: "unknown",
				Title:       fmt.Sprintf("%d %s default routes with the same priority", unscoped, fam),
				Explanation: "The kernel picks one of them and may switch between them; connections then break at random. Usually two DHCP clients or a VPN that added its own default. Remove the one that should not be there.",
				Evidence:    ev})
		}
		// A default or /1 halves through a tunnel device that is not ours.
		if c.in.Agent == nil && d.Route.Device != "" && c.tunnelLike(d.Route.Device) && !d.Refused {
			if dead, _ := c.deviceDead(d.Route.Device); !dead {
				c.add(Finding{ID: "default-hijack", Severity: Info, Owner: ownerOfDevice(d.Route.Device),
					Title:       fmt.Sprintf("%s internet traffic goes through %s (another VPN)", fam, d.Route.Device),
					Explanation: "Another VPN client sends all traffic through its tunnel. That is fine while it is meant to; if you did not start one, it is a leftover.",
					Evidence:    []Evidence{{Kind: "lookup", Text: fmt.Sprintf("route get %s -> %s", probe, display(d.Route))}}})
			}
		}
	}
}

func (c *checker) ipv6Leak() {
	a := c.in.Agent
	if a == nil || !a.FullTunnel {
		return
	}
	d := Select(c.snap, Flow{Dst: probe6})
	if d.Refused {
		// The kernel does not stop at a refused IPv6 lookup: it picks a
		// source address and looks up again with it, so source rules can
		// still let the connection out.
		for _, ad := range c.snap.Addresses {
			ip := ad.Prefix.Addr()
			if !ip.Is6() || ad.Device == a.Interface || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				continue
			}
			if again := Select(c.snap, Flow{Dst: probe6, Src: ip}); !again.Refused && again.Route.Device != a.Interface {
				d = again
				break
			}
		}
	}
	if d.Refused || d.Route.Device == a.Interface {
		return
	}
	c.add(Finding{ID: "ipv6-leak", Severity: Error, Owner: "clearpath",
		Title:       fmt.Sprintf("full tunnel on, but IPv6 leaves through %s", d.Route.Device),
		Explanation: "All IPv4 traffic goes through the tunnel, but IPv6 to the internet bypasses it: websites see your real address. ClearPath refuses IPv6 when the tunnel has none; this means that rule is missing. Reconnect (`vpn down && vpn up --all-traffic`).",
		Evidence:    []Evidence{{Kind: "lookup", Text: fmt.Sprintf("route get %s -> %s", probe6, display(d.Route))}}})
}

func (c *checker) overlaps() {
	a := c.in.Agent
	if a == nil {
		return
	}
	for _, o := range routes.Overlaps(c.snap, routes.TunnelSpec{Device: a.Interface, Prefixes: a.Prefixes, RouteLAN: a.RouteLAN, Resolvers: c.in.DNS}) {
		why := ""
		if o.Reason != "" {
			why = " (" + o.Reason + ")"
		}
		host := o.Local.Dst.Addr().Next()
		if o.Winner == "tunnel" {
			host = o.Pushed.Addr().Next()
		}
		d := Select(c.snap, Flow{Dst: host})
		c.add(Finding{ID: "subnet-overlap", Severity: Info, Owner: "clearpath",
			Title: fmt.Sprintf("pushed %s overlaps %s on %s: %s wins for %s%s", o.Pushed, o.Local.Dst, o.Local.Device, o.Winner, o.Local.Dst, why),
			Explanation: fmt.Sprintf("Longest prefix wins across the tunnel and this machine's own routes: traffic to %s stays on %s, the rest of %s goes through the tunnel. Replies to inbound sessions keep the path they came in on.",
				moreSpecific(o), lessDevice(o, a.Interface), o.Pushed),
			Evidence: []Evidence{routeEv(o.Local), {Kind: "lookup", Text: fmt.Sprintf("route get %s -> %s", host, display(d.Route))}}})
	}
}

func moreSpecific(o routes.Overlap) netip.Prefix {
	if o.Local.Dst.Bits() > o.Pushed.Bits() {
		return o.Local.Dst
	}
	return o.Pushed
}

func lessDevice(o routes.Overlap, tun string) string {
	if o.Winner == "lan" {
		return o.Local.Device
	}
	return tun
}

func (c *checker) endpointLoop() {
	a := c.in.Agent
	if a == nil || !a.Endpoint.IsValid() {
		return
	}
	d := Select(c.snap, Flow{Dst: a.Endpoint.Addr(), FwMark: routes.FwMark})
	if d.Route.Device != a.Interface {
		return
	}
	f := Finding{ID: "endpoint-loop", Severity: Error, Owner: "clearpath",
		Title:       fmt.Sprintf("the gateway endpoint %s routes into the tunnel itself", a.Endpoint.Addr()),
		Explanation: "WireGuard's own packets to the gateway would enter the tunnel they carry: nothing gets through. ClearPath marks its socket and skips the tunnel for marked packets; a rule ahead of ours is catching them.",
		Evidence:    []Evidence{{Kind: "lookup", Text: fmt.Sprintf("route get %s mark %#x -> %s", a.Endpoint.Addr(), routes.FwMark, display(d.Route))}, routeEv(d.Route)}}
	if d.Rule != nil {
		f.Evidence = append(f.Evidence, ruleEv(*d.Rule))
	}
	// A route of ours is put back by the agent's next re-sync, so only
	// another program's route into our tunnel is offered for removal.
	if d.Route.Protocol != routes.Protocol {
		f.Owner = "unknown"
		f.Fix, f.Fixable = []routes.Change{delRoute(d.Route)}, true
	}
	c.add(f)
}

func (c *checker) rulePriorities() {
	for _, r := range c.snap.Rules {
		if r.Protocol == routes.Protocol {
			continue
		}
		if r.Priority == routes.PrioritySourceRules || r.Priority == routes.PriorityTunnelRule {
			c.add(Finding{ID: "rule-priority-conflict", Severity: Warning, Owner: ownerOfRule(r),
				Title:       fmt.Sprintf("a rule of %s sits at priority %d, which ClearPath uses", ownerOfRule(r), r.Priority),
				Explanation: "Two rules at one priority are evaluated in insertion order: which VPN wins depends on who started first.",
				Evidence:    []Evidence{ruleEv(r)}})
		}
	}
	if c.in.Agent == nil {
		return
	}
	seen := map[string]bool{}
	for _, r := range c.snap.Rules {
		o := ownerOfRule(r)
		if o == "unknown" || o == "clearpath" || seen[o] {
			continue
		}
		seen[o] = true
		first := "ClearPath's rules (4100, 4200) come first: for prefixes both tunnels route, ClearPath wins"
		if r.Priority < routes.PrioritySourceRules {
			first = fmt.Sprintf("%s's rule at %d comes before ClearPath's: it wins for what it matches", o, r.Priority)
		}
		c.add(Finding{ID: "rule-priority-conflict", Severity: Info, Owner: o,
			Title: fmt.Sprintf("%s runs alongside ClearPath", o), Explanation: first + ".", Evidence: []Evidence{ruleEv(r)}})
	}
}

func (c *checker) sysctl(key string) string { return c.in.Sysctls[key] }

func (c *checker) rpFilter() {
	a := c.in.Agent
	if a == nil || c.darwin() {
		return
	}
	strict := func(k string) bool { return c.sysctl(k) == "1" }
	dev := "net.ipv4.conf." + a.Interface + ".rp_filter"
	if strict("net.ipv4.conf.all.rp_filter") || strict(dev) {
		if c.sysctl("net.ipv4.conf.all.src_valid_mark") != "1" {
			c.add(Finding{ID: "rp-filter-drop", Severity: Warning, Owner: "system",
				Title:       "strict reverse-path filtering may drop tunnel replies",
				Explanation: "With rp_filter=1 the kernel drops a packet when the route back to its source would use another interface. ClearPath's routes live in a policy table selected by a firewall mark; without src_valid_mark the check ignores the mark and can pick the wrong path. Set src_valid_mark=1 (as wg-quick does) or loose mode (2).",
				Evidence: []Evidence{{Kind: "sysctl", Text: "net.ipv4.conf.all.rp_filter = " + c.sysctl("net.ipv4.conf.all.rp_filter")},
					{Kind: "sysctl", Text: "net.ipv4.conf.all.src_valid_mark = " + c.sysctl("net.ipv4.conf.all.src_valid_mark")}},
				Commands: []string{"sudo sysctl -w net.ipv4.conf.all.src_valid_mark=1"}})
		}
	}
}

func (c *checker) mtu() {
	a := c.in.Agent
	if a == nil || a.PathMTU == 0 || a.MTU == 0 {
		return
	}
	overhead := 60 // IPv4 + UDP + WireGuard
	if a.Endpoint.Addr().Is6() {
		overhead = 80
	}
	if a.MTU+overhead > a.PathMTU {
		c.add(Finding{ID: "mtu-too-large", Severity: Warning, Owner: "clearpath",
			Title:       fmt.Sprintf("tunnel MTU %d needs a path MTU of %d, the path allows %d", a.MTU, a.MTU+overhead, a.PathMTU),
			Explanation: "Large packets through the tunnel get fragmented or dropped: small requests work, big downloads and TLS handshakes hang. Lower the tunnel MTU to the path MTU minus the WireGuard overhead.",
			Evidence:    []Evidence{{Kind: "link", Text: fmt.Sprintf("%s mtu %d, path mtu %d", a.Interface, a.MTU, a.PathMTU)}},
			Commands:    []string{fmt.Sprintf("sudo ip link set %s mtu %d", a.Interface, a.PathMTU-overhead)}})
	}
}

// tunnelAddresses flags an address on our tunnel link that the gateway did
// not assign or that is not a single host (/32, /128): the agent adds
// exactly the assigned hosts, without a prefix route, so anything else was
// added by someone else and may carry a kernel route past the engine.
func (c *checker) tunnelAddresses() {
	a := c.in.Agent
	if a == nil || a.Interface == "" {
		return
	}
	for _, ad := range routes.TunnelAddresses(c.snap, a.Interface, a.Addresses) {
		p := ad.Prefix
		ev := []Evidence{{Kind: "address", Text: fmt.Sprintf("%s dev %s", p, ad.Device)}}
		for _, r := range c.snap.Routes {
			if r.Device == ad.Device && r.Protocol != routes.Protocol && r.Dst.Contains(p.Addr()) && r.Dst.Bits() == p.Bits() {
				ev = append(ev, routeEv(r)) // the kernel's prefix route of that address
			}
		}
		sev, title := Warning, fmt.Sprintf("%s on %s was not assigned by the gateway", p, ad.Device)
		why := "ClearPath puts exactly the addresses the gateway assigned on its tunnel (" + joinPrefixes(a.Addresses) +
			"). Another address there was added by someone else: traffic from it leaves through the tunnel with a source the gateway does not accept."
		if !p.IsSingleIP() {
			sev = Error
			title = fmt.Sprintf("%s on %s is a network, not a host address", p, ad.Device)
			why = "Tunnel addresses are single hosts (/32, /128) added without a kernel prefix route. An address with a shorter prefix " +
				"makes the kernel route its whole network into the tunnel, outside ClearPath's journal and overlap checks, " +
				"and can beat the LAN's own routes."
		}
		cmd := fmt.Sprintf("sudo ip address del %s dev %s", p, ad.Device)
		if c.darwin() {
			fam := "inet"
			if p.Addr().Is6() {
				fam = "inet6"
			}
			cmd = fmt.Sprintf("sudo ifconfig %s %s %s delete", ad.Device, fam, p.Addr())
		}
		c.add(Finding{ID: "tunnel-address", Severity: sev, Owner: "unknown", Title: title, Explanation: why,
			Evidence: ev, Commands: []string{cmd}})
	}
}

func joinPrefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func (c *checker) handshake() {
	a := c.in.Agent
	if a == nil {
		return
	}
	age := c.in.Now.Sub(a.LastHandshake)
	if a.LastHandshake.IsZero() || age > 3*time.Minute {
		text := "never"
		if !a.LastHandshake.IsZero() {
			text = age.Round(time.Second).String() + " ago"
		}
		c.add(Finding{ID: "handshake-stale", Severity: Warning, Owner: "clearpath",
			Title:       "no WireGuard handshake for " + text,
			Explanation: "WireGuard renews its handshake every two minutes while traffic flows; none for this long means the gateway is unreachable (UDP blocked, network changed, gateway down or your key expired or revoked).",
			Evidence:    []Evidence{{Kind: "link", Text: fmt.Sprintf("%s latest handshake: %s (endpoint %s)", a.Interface, text, a.Endpoint)}}})
	}
}

func (c *checker) dns() {
	for _, s := range c.in.DNS {
		if s.IsLoopback() {
			continue
		}
		d := Select(c.snap, Flow{Dst: s})
		dead, why := c.deviceDead(d.Route.Device)
		if !d.Refused && !dead {
			continue
		}
		reason := "no route"
		switch {
		case dead:
			reason = "device " + d.Route.Device + " " + why
		case !d.NoRoute:
			reason = string(d.Route.Type)
		}
		c.add(Finding{ID: "dns-unroutable", Severity: Error, Owner: "unknown",
			Title:       fmt.Sprintf("DNS server %s cannot be reached (%s)", s, reason),
			Explanation: "Name resolution uses a server whose route leads nowhere, so every lookup times out and the network looks dead even though it works. A VPN set this resolver and left; restore your network's DNS (reconnect Wi-Fi, or fix resolv.conf).",
			Evidence:    []Evidence{{Kind: "lookup", Text: fmt.Sprintf("route get %s -> %s", s, reason)}}})
	}
}
