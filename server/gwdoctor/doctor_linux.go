package gwdoctor

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/clearpath-vpn/clearpath/internal/icmpecho"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/explain"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// rulePriority is the gateway's rule priority (server/gateway.RulePriority).
const rulePriority = 1000

// report collects findings in the order the checks run.
type report struct{ findings []analysis.Finding }

func (r *report) add(f analysis.Finding) { r.findings = append(r.findings, f) }

// Check examines this network namespace against the configuration.
func Check(ctx context.Context, o Options) (*analysis.Report, error) {
	if o.PingTimeout == 0 {
		o.PingTimeout = time.Second
	}
	r := &report{}
	checkForwarding(r)
	_, err := (admin.Client{Path: o.Config.AdminSocket}).Status(ctx)
	if err != nil {
		f := finding("gateway-not-running", analysis.Warning, "", "the gateway does not answer on its admin socket", err.Error())
		f.Commands = []string{"vpn-gateway serve --config FILE"}
		r.add(f)
	} else {
		r.add(finding("gateway-running", analysis.OK, "", "the gateway answers on "+o.Config.AdminSocket))
	}
	checkHostGuard(r, o.Config, err == nil)
	wc, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("open wgctrl: %w", err)
	}
	defer wc.Close()
	sys, err := routes.NewSystem()
	if err != nil {
		return nil, err
	}
	if c, ok := sys.(io.Closer); ok {
		defer c.Close()
	}
	snap, err := sys.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("read routes and rules: %w", err)
	}
	h := &host{sys: sys, snap: snap}
	for _, n := range o.Config.Networks {
		checkNetwork(ctx, r, o, wc, h, n)
	}
	rep := analysis.NewReport("linux", r.findings)
	return &rep, nil
}

// host is the routing state the checks read: one snapshot, and the
// System for real lookups.
type host struct {
	sys  routes.System
	snap *routes.Snapshot
}

func (h *host) link(name string) (routes.Link, bool) {
	for _, l := range h.snap.Links {
		if l.Name == name {
			return l, true
		}
	}
	return routes.Link{}, false
}

func (h *host) addresses(dev string) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range h.snap.Addresses {
		if a.Device == dev {
			out = append(out, a.Prefix)
		}
	}
	return out
}

func checkForwarding(r *report) {
	for _, p := range []struct{ path, key string }{
		{"/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"},
	} {
		b, err := os.ReadFile(p.path)
		switch {
		case err != nil:
			r.add(finding("forwarding-unknown", analysis.Warning, "", "cannot read "+p.key, err.Error()))
		case strings.TrimSpace(string(b)) != "1":
			f := finding("forwarding-off", analysis.Error, "", p.key+" is off: the gateway forwards nothing")
			f.Evidence = []analysis.Evidence{{Kind: "sysctl", Text: p.key + " = " + strings.TrimSpace(string(b))}}
			f.Commands = []string{"sysctl -w " + p.key + "=1"}
			r.add(f)
		default:
			r.add(finding("forwarding-on", analysis.OK, "", p.key+" = 1"))
		}
	}
}

func famFlag(a netip.Addr) string {
	if a.Is6() {
		return "-6 "
	}
	return ""
}

func checkNetwork(ctx context.Context, r *report, o Options, wc *wgctrl.Client, h *host, n config.Network) {
	f := func(id, sev, title string, ev ...string) analysis.Finding {
		return finding(id, sev, n.Name, title, ev...)
	}
	link, ok := h.link(n.Interface)
	if !ok {
		fd := f("device-missing", analysis.Error, "interface "+n.Interface+" does not exist")
		fd.Commands = []string{"start (or restart) the gateway: vpn-gateway serve --config FILE"}
		r.add(fd)
	} else {
		if !link.Up {
			fd := f("device-down", analysis.Error, "interface "+n.Interface+" is down")
			fd.Evidence = []analysis.Evidence{{Kind: "link", Text: fmt.Sprintf("%s (%s) is down", link.Name, link.Type)}}
			fd.Commands = []string{"ip link set " + n.Interface + " up"}
			r.add(fd)
		}
		if d, err := wc.Device(n.Interface); err != nil {
			r.add(f("device-not-wireguard", analysis.Error, n.Interface+" is not a WireGuard device", err.Error()))
		} else if d.ListenPort != n.ListenPort {
			r.add(f("listen-port-mismatch", analysis.Error, fmt.Sprintf("%s listens on UDP %d, the configuration says %d", n.Interface, d.ListenPort, n.ListenPort)))
		} else {
			// The device holds the active peers only; registered ones join
			// it at their handshake (lazy peers), so this is no count of
			// registrations.
			r.add(f("device-ok", analysis.OK, fmt.Sprintf("%s is up, WireGuard on UDP %d, %d active peers on the device", n.Interface, d.ListenPort, len(d.Peers))))
		}
		addrs := h.addresses(n.Interface)
		for _, want := range n.GatewayAddrs() {
			if !slices.Contains(addrs, want) {
				fd := f("address-missing", analysis.Error, fmt.Sprintf("%s lacks the gateway's tunnel address %s", n.Interface, want))
				fd.Commands = []string{fmt.Sprintf("ip %saddr add %s dev %s", famFlag(want.Addr()), want, n.Interface)}
				r.add(fd)
			}
		}
	}

	// Rules and table.
	for _, fam := range []routes.Family{routes.FamilyV4, routes.FamilyV6} {
		flag := ""
		if fam == routes.FamilyV6 {
			flag = "-6 "
		}
		if !slices.ContainsFunc(h.snap.Rules, func(x routes.Rule) bool {
			return x.Family == fam && x.IIF == n.Interface && x.Table == n.Table && (x.Action == "lookup" || x.Action == "") && !x.Invert
		}) {
			fd := f("rule-missing", analysis.Error, fmt.Sprintf("no %srule iif %s lookup %d: this network's clients bypass its table", flag, n.Interface, n.Table))
			fd.Commands = []string{fmt.Sprintf("ip %srule add iif %s lookup %d pref %d", flag, n.Interface, n.Table, rulePriority)}
			r.add(fd)
		}
	}
	var tbl []routes.Route
	for _, x := range h.snap.Routes {
		if x.Table == n.Table {
			tbl = append(tbl, x)
		}
	}
	has := func(typ routes.RouteType, p netip.Prefix) bool {
		return slices.ContainsFunc(tbl, func(x routes.Route) bool { return x.Type == typ && x.Dst == p })
	}
	for _, p := range n.Allow {
		if !has(routes.TypeThrow, p) {
			fd := f("throw-missing", analysis.Error, fmt.Sprintf("table %d has no throw route for allowed %s: the network cannot reach it", n.Table, p))
			fd.Commands = []string{fmt.Sprintf("ip %sroute add throw %s table %d", famFlag(p.Addr()), p, n.Table)}
			r.add(fd)
		}
	}
	for _, def := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		if !has(routes.TypeBlackhole, def) {
			fd := f("blackhole-missing", analysis.Error, fmt.Sprintf("table %d has no blackhole default (%s): what is not allowed falls through to main", n.Table, def))
			fd.Commands = []string{fmt.Sprintf("ip %sroute add blackhole default table %d", famFlag(def.Addr()), n.Table)}
			r.add(fd)
		}
	}
	for _, x := range tbl {
		if x.Type == routes.TypeThrow && slices.Contains(n.Allow, x.Dst) || x.Type == routes.TypeBlackhole && x.Dst.Bits() == 0 {
			continue
		}
		fd := f("table-extra", analysis.Warning, fmt.Sprintf("table %d holds a route the configuration does not: %s", n.Table, x))
		x := x
		fd.Evidence = []analysis.Evidence{{Kind: "route", Text: x.String(), Route: &x}}
		fd.Commands = []string{routes.Change{Op: routes.OpDelRoute, Route: &x}.String()}
		r.add(fd)
	}

	// Walk the tables as a client's packets would.
	for _, pool := range n.Pool {
		src := firstHost(pool).Next() // the first client address
		for _, p := range n.Allow {
			if p.Addr().Is4() != src.Is4() {
				continue
			}
			dst := sampleInside(p, h.snap)
			d := analysis.Walk(h.snap, analysis.Flow{Src: src, Dst: dst, IIF: n.Interface})
			o := explain.Judge(d, dst, n.Interface)
			if !o.Forwarded {
				fd := f("allowed-not-routed", analysis.Error, fmt.Sprintf("allowed %s is not reachable from %s: %s", p, src, o.Why))
				fd.Evidence = stepsEvidence(d)
				r.add(fd)
			} else {
				r.add(f("allowed-routed", analysis.OK, fmt.Sprintf("%s -> %s: %s", src, dst, o.Why)))
			}
		}
		if out := sampleOutside(n, src.Is6()); out.IsValid() {
			d := analysis.Walk(h.snap, analysis.Flow{Src: src, Dst: out, IIF: n.Interface})
			o := explain.Judge(d, out, n.Interface)
			if o.Forwarded {
				fd := f("policy-leak", analysis.Error, fmt.Sprintf("%s is outside the allowed CIDRs but %s's clients reach it: %s", out, n.Name, o.Why))
				fd.Evidence = stepsEvidence(d)
				r.add(fd)
			} else {
				r.add(f("refused-outside", analysis.OK, fmt.Sprintf("%s -> %s refused: %s", src, out, o.Why)))
			}
		}
	}

	// Return routes from each allowed CIDR to each pool.
	for _, pool := range n.Pool {
		from := firstHost(pool) // the gateway's own tunnel address
		for _, p := range n.Allow {
			if p.Addr().Is4() != from.Is4() {
				continue
			}
			checkReturn(ctx, r, o, h, n, pool, from, p)
		}
	}
}

func famOf(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// checkReturn finds how the gateway reaches vpc and proves, by pinging a
// host there from the pool's gateway address, that the VPC routes the pool
// back. It always names the route the VPC needs.
func checkReturn(ctx context.Context, r *report, o Options, h *host, n config.Network, pool netip.Prefix, from netip.Addr, vpc netip.Prefix) {
	f := func(id, sev, title string, ev ...string) analysis.Finding {
		return finding(id, sev, n.Name, title, ev...)
	}
	var targets []netip.Addr
	for _, a := range append(slices.Clone(n.Probe), o.Probes...) {
		if vpc.Contains(a) && !slices.Contains(targets, a) {
			targets = append(targets, a)
		}
	}
	dst := sampleInside(vpc, h.snap)
	if len(targets) > 0 {
		dst = targets[0]
	}
	rt, err := h.sys.Lookup(routes.Query{Dst: dst, Src: from})
	if err != nil {
		r.add(f("vpc-unrouted", analysis.Error, fmt.Sprintf("the gateway has no route to %s (ip route get %s from %s: %v)", vpc, dst, from, err)))
		return
	}
	dev := rt.Device
	var via netip.Addr
	for _, ap := range h.addresses(dev) {
		if ap.Addr().Is4() != from.Is4() || ap.Addr().IsLinkLocalUnicast() {
			continue
		}
		if !via.IsValid() || ap.Contains(dst) {
			via = ap.Addr()
		}
	}
	cloud, linux := ReturnRoute(pool, via, vpc, dev)
	if len(targets) == 0 {
		targets = neighbours(h, dev, vpc)
	}
	if gw := rt.Gateway; gw.IsValid() && vpc.Contains(gw) && !slices.Contains(targets, gw) {
		targets = append(targets, gw)
	}
	if len(targets) == 0 {
		fd := f("return-route-unverified", analysis.Info, fmt.Sprintf("replies from %s to the pool %s need a route back to this gateway; no host to probe (add `probe:` to the network, or --probe)", vpc, pool))
		fd.Cloud = nonEmpty(cloud, linux)
		r.add(fd)
		return
	}
	if len(targets) > 3 {
		targets = targets[:3]
	}
	var ev []string
	for _, t := range targets {
		rtt, err := ping(ctx, from, t, o.PingTimeout)
		if err == nil {
			r.add(f("return-route", analysis.OK, fmt.Sprintf("%s routes %s back: %s answered a ping from %s in %s", vpc, pool, t, from, rtt.Round(time.Microsecond))))
			return
		}
		ev = append(ev, fmt.Sprintf("ping %s from %s: %v", t, from, err))
	}
	// No answer to the pool address: does the host answer at all?
	if via.IsValid() {
		for _, t := range targets {
			if rtt, err := ping(ctx, via, t, o.PingTimeout); err == nil {
				ev = append(ev, fmt.Sprintf("ping %s from %s (the gateway's own address there): reply in %s", t, via, rtt.Round(time.Microsecond)))
				fd := f("no-return-route", analysis.Error, fmt.Sprintf("%s answers the gateway but not the pool %s: the VPC has no route back for the pool, so clients' replies are lost", t, pool), ev...)
				fd.Cloud = nonEmpty(cloud, linux)
				r.add(fd)
				return
			}
		}
	}
	fd := f("probe-unanswered", analysis.Warning, fmt.Sprintf("no probe in %s answered a ping at all: cannot tell whether the pool %s is routed back", vpc, pool), ev...)
	fd.Cloud = nonEmpty(cloud, linux)
	r.add(fd)
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// neighbours are hosts of vpc the gateway has talked to on dev.
func neighbours(h *host, dev string, vpc netip.Prefix) []netip.Addr {
	l, ok := h.link(dev)
	if !ok {
		return nil
	}
	ns, err := netlink.NeighList(l.Index, famOf(vpc.Addr()))
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, nb := range ns {
		a, ok := netip.AddrFromSlice(nb.IP)
		if !ok || nb.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) == 0 {
			continue
		}
		if a = a.Unmap(); vpc.Contains(a) && !a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	return out
}

// sampleInside returns an address of p that is not one of this host's own
// (the gateway's address in a VPC would only prove local delivery).
func sampleInside(p netip.Prefix, snap *routes.Snapshot) netip.Addr {
	a := firstHost(p)
	for range 8 {
		if !slices.ContainsFunc(snap.Routes, func(r routes.Route) bool {
			return r.Table == 255 && r.Type == routes.TypeLocal && r.Dst.Contains(a)
		}) {
			return a
		}
		a = a.Next()
	}
	return a
}

// ping sends up to three ICMP echo requests from src to dst, one every
// timeout/3, and waits for a reply to one of them.
func ping(ctx context.Context, src, dst netip.Addr, timeout time.Duration) (time.Duration, error) {
	return icmpecho.Ping(ctx, src, dst, icmpecho.Options{Tries: 3, Wait: timeout / 3, Payload: "clearpath-doctor"})
}

// checkHostGuard compares the gateway's nftables table (server/hostguard)
// with the configuration: missing while the gateway runs is an error (the
// host is open to the tunnels), different is a warning (the file changed
// without a reload, or someone edited the table).
func checkHostGuard(r *report, cfg *config.Config, running bool) {
	name := "table inet " + hostguard.TableName
	exists, live, err := hostguard.Live()
	switch {
	case err != nil:
		r.add(finding("host-guard-unknown", analysis.Warning, "", "cannot read "+name, err.Error()))
	case !exists && running:
		f := finding("host-guard-missing", analysis.Error, "", name+" is missing: the gateway host is open to every tunnel user")
		f.Commands = []string{"vpn-gateway reload   # or restart the gateway: it installs the table at start"}
		r.add(f)
	case !exists:
		r.add(finding("host-guard-off", analysis.OK, "", name+" absent (the gateway is not running)"))
	case !running:
		r.add(finding("host-guard-stale", analysis.Info, "", name+" left by a gateway that is not running: it drops only traffic of group interfaces, the next start replaces it"))
	default:
		if diff := hostguard.Compare(hostguard.FromConfig(cfg), live); len(diff) > 0 {
			f := finding("host-guard-differs", analysis.Warning, "", name+" differs from the configuration", diff...)
			f.Commands = []string{"vpn-gateway reload"}
			r.add(f)
			return
		}
		var ev []string
		for _, l := range live {
			if l.Drop {
				ev = append(ev, fmt.Sprintf("%s: %d packets dropped", l.Comment, l.Packets))
			}
		}
		r.add(finding("host-guard", analysis.OK, "", name+" closes the gateway host to the tunnels", ev...))
	}
}
