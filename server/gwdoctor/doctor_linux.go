package gwdoctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/explain"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// rulePriority is the gateway's rule priority (server/gateway.RulePriority).
const rulePriority = 1000

// Check examines this network namespace against the configuration.
func Check(ctx context.Context, o Options) (*Report, error) {
	if o.PingTimeout == 0 {
		o.PingTimeout = time.Second
	}
	r := &Report{Schema: Schema, Findings: []Finding{}}
	checkForwarding(r)
	_, err := (admin.Client{Path: o.Config.AdminSocket}).Status(ctx)
	if err != nil {
		r.add(Finding{ID: "gateway-not-running", Severity: Warning, Title: "the gateway does not answer on its admin socket", Evidence: []string{err.Error()}, Fix: []string{"vpn-gateway serve --config FILE"}})
	} else {
		r.add(Finding{ID: "gateway-running", Severity: OK, Title: "the gateway answers on " + o.Config.AdminSocket})
	}
	checkHostGuard(r, o.Config, err == nil)
	wc, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("open wgctrl: %w", err)
	}
	defer wc.Close()
	tables, rules, err := liveTables()
	if err != nil {
		return nil, err
	}
	for _, n := range o.Config.Networks {
		checkNetwork(ctx, r, o, wc, n, tables, rules)
	}
	r.summarize()
	return r, nil
}

func checkForwarding(r *Report) {
	for _, p := range []struct{ path, key string }{
		{"/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"},
	} {
		b, err := os.ReadFile(p.path)
		switch {
		case err != nil:
			r.add(Finding{ID: "forwarding-unknown", Severity: Warning, Title: "cannot read " + p.key, Evidence: []string{err.Error()}})
		case strings.TrimSpace(string(b)) != "1":
			r.add(Finding{ID: "forwarding-off", Severity: Error, Title: p.key + " is off: the gateway forwards nothing",
				Evidence: []string{p.key + " = " + strings.TrimSpace(string(b))}, Fix: []string{"sysctl -w " + p.key + "=1"}})
		default:
			r.add(Finding{ID: "forwarding-on", Severity: OK, Title: p.key + " = 1"})
		}
	}
}

func famFlag(a netip.Addr) string {
	if a.Is6() {
		return "-6 "
	}
	return ""
}

func checkNetwork(ctx context.Context, r *Report, o Options, wc *wgctrl.Client, n config.Network, tables map[int][]explain.Route, rules map[int][]explain.Rule) {
	f := func(id, sev, title string, ev ...string) Finding {
		return Finding{ID: id, Severity: sev, Network: n.Name, Title: title, Evidence: ev}
	}
	link, err := netlink.LinkByName(n.Interface)
	if err != nil {
		fd := f("device-missing", Error, "interface "+n.Interface+" does not exist", err.Error())
		fd.Fix = []string{"start (or restart) the gateway: vpn-gateway serve --config FILE"}
		r.add(fd)
	} else {
		if link.Attrs().Flags&net.FlagUp == 0 {
			fd := f("device-down", Error, "interface "+n.Interface+" is down")
			fd.Fix = []string{"ip link set " + n.Interface + " up"}
			r.add(fd)
		}
		if d, err := wc.Device(n.Interface); err != nil {
			r.add(f("device-not-wireguard", Error, n.Interface+" is not a WireGuard device", err.Error()))
		} else if d.ListenPort != n.ListenPort {
			r.add(f("listen-port-mismatch", Error, fmt.Sprintf("%s listens on UDP %d, the configuration says %d", n.Interface, d.ListenPort, n.ListenPort)))
		} else {
			r.add(f("device-ok", OK, fmt.Sprintf("%s is up, WireGuard on UDP %d, %d peers", n.Interface, d.ListenPort, len(d.Peers))))
		}
		addrs, _ := netlink.AddrList(link, netlink.FAMILY_ALL)
		for _, want := range n.GatewayAddrs() {
			if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return prefixOf(a.IPNet) == want }) {
				fd := f("address-missing", Error, fmt.Sprintf("%s lacks the gateway's tunnel address %s", n.Interface, want))
				fd.Fix = []string{fmt.Sprintf("ip %saddr add %s dev %s", famFlag(want.Addr()), want, n.Interface)}
				r.add(fd)
			}
		}
	}

	// Rules and table.
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		flag := ""
		if fam == unix.AF_INET6 {
			flag = "-6 "
		}
		if !slices.ContainsFunc(rules[fam], func(x explain.Rule) bool { return x.IifName == n.Interface && x.Table == n.Table && x.Action == 1 }) {
			fd := f("rule-missing", Error, fmt.Sprintf("no %srule iif %s lookup %d: this network's clients bypass its table", flag, n.Interface, n.Table))
			fd.Fix = []string{fmt.Sprintf("ip %srule add iif %s lookup %d pref %d", flag, n.Interface, n.Table, rulePriority)}
			r.add(fd)
		}
	}
	tbl := tables[n.Table]
	has := func(typ int, p netip.Prefix) bool {
		return slices.ContainsFunc(tbl, func(x explain.Route) bool { return x.Type == typ && x.Dst == p })
	}
	for _, p := range n.Allow {
		if !has(explain.TypeThrow, p) {
			fd := f("throw-missing", Error, fmt.Sprintf("table %d has no throw route for allowed %s: the network cannot reach it", n.Table, p))
			fd.Fix = []string{fmt.Sprintf("ip %sroute add throw %s table %d", famFlag(p.Addr()), p, n.Table)}
			r.add(fd)
		}
	}
	for _, def := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		if !has(explain.TypeBlackhole, def) {
			fd := f("blackhole-missing", Error, fmt.Sprintf("table %d has no blackhole default (%s): what is not allowed falls through to main", n.Table, def))
			fd.Fix = []string{fmt.Sprintf("ip %sroute add blackhole default table %d", famFlag(def.Addr()), n.Table)}
			r.add(fd)
		}
	}
	for _, x := range tbl {
		if x.Type == explain.TypeThrow && slices.Contains(n.Allow, x.Dst) || x.Type == explain.TypeBlackhole && x.Dst.Bits() == 0 {
			continue
		}
		fd := f("table-extra", Warning, fmt.Sprintf("table %d holds a route the configuration does not: %s", n.Table, x))
		fd.Fix = []string{fmt.Sprintf("ip %sroute del %s", famFlag(x.Dst.Addr()), strings.TrimSpace(x.String()))}
		r.add(fd)
	}

	// Walk the tables as a client's packets would.
	for _, pool := range n.Pool {
		src := firstHost(pool).Next() // the first client address
		for _, p := range n.Allow {
			if p.Addr().Is4() != src.Is4() {
				continue
			}
			dst := sampleInside(p, tables)
			d := explain.Evaluate(rules[famOf(dst)], tables, src, dst, n.Interface)
			if !d.Forwarded {
				fd := f("allowed-not-routed", Error, fmt.Sprintf("allowed %s is not reachable from %s: %s", p, src, d.Why), pathOf(d)...)
				r.add(fd)
			} else {
				r.add(f("allowed-routed", OK, fmt.Sprintf("%s -> %s: %s", src, dst, d.Why)))
			}
		}
		if out := sampleOutside(n, src.Is6()); out.IsValid() {
			d := explain.Evaluate(rules[famOf(out)], tables, src, out, n.Interface)
			if d.Forwarded {
				fd := f("policy-leak", Error, fmt.Sprintf("%s is outside the allowed CIDRs but %s's clients reach it: %s", out, n.Name, d.Why), pathOf(d)...)
				r.add(fd)
			} else {
				r.add(f("refused-outside", OK, fmt.Sprintf("%s -> %s refused: %s", src, out, d.Why)))
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
			checkReturn(ctx, r, o, n, pool, from, p)
		}
	}
}

func pathOf(d explain.Decision) []string {
	var out []string
	for _, s := range d.Steps {
		line := strings.ReplaceAll(s.Rule.String(), "\t", " ") + " -> "
		if s.Route != nil {
			line += s.Route.String() + ": "
		}
		out = append(out, line+s.Outcome)
	}
	return out
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
func checkReturn(ctx context.Context, r *Report, o Options, n config.Network, pool netip.Prefix, from netip.Addr, vpc netip.Prefix) {
	f := func(id, sev, title string, ev ...string) Finding {
		return Finding{ID: id, Severity: sev, Network: n.Name, Title: title, Evidence: ev}
	}
	var targets []netip.Addr
	for _, a := range append(slices.Clone(n.Probe), o.Probes...) {
		if vpc.Contains(a) && !slices.Contains(targets, a) {
			targets = append(targets, a)
		}
	}
	dst := sampleInside(vpc, liveLocal())
	if len(targets) > 0 {
		dst = targets[0]
	}
	rs, err := netlink.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{SrcAddr: from.AsSlice()})
	if err != nil || len(rs) == 0 {
		r.add(f("vpc-unrouted", Error, fmt.Sprintf("the gateway has no route to %s (ip route get %s from %s: %v)", vpc, dst, from, err)))
		return
	}
	var dev string
	var via netip.Addr
	if l, err := netlink.LinkByIndex(rs[0].LinkIndex); err == nil {
		dev = l.Attrs().Name
		addrs, _ := netlink.AddrList(l, famOf(from))
		for _, a := range addrs {
			ap := prefixOf(a.IPNet)
			if ap.Addr().IsLinkLocalUnicast() {
				continue
			}
			if !via.IsValid() || ap.Contains(dst) {
				via = ap.Addr()
			}
		}
	}
	cloud, linux := ReturnRoute(pool, via, vpc, dev)
	if len(targets) == 0 {
		targets = neighbours(dev, vpc)
	}
	if gw, ok := netip.AddrFromSlice(rs[0].Gw); ok && vpc.Contains(gw.Unmap()) && !slices.Contains(targets, gw.Unmap()) {
		targets = append(targets, gw.Unmap())
	}
	if len(targets) == 0 {
		fd := f("return-route-unverified", Info, fmt.Sprintf("replies from %s to the pool %s need a route back to this gateway; no host to probe (add `probe:` to the network, or --probe)", vpc, pool))
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
			r.add(f("return-route", OK, fmt.Sprintf("%s routes %s back: %s answered a ping from %s in %s", vpc, pool, t, from, rtt.Round(time.Microsecond))))
			return
		}
		ev = append(ev, fmt.Sprintf("ping %s from %s: %v", t, from, err))
	}
	// No answer to the pool address: does the host answer at all?
	if via.IsValid() {
		for _, t := range targets {
			if rtt, err := ping(ctx, via, t, o.PingTimeout); err == nil {
				ev = append(ev, fmt.Sprintf("ping %s from %s (the gateway's own address there): reply in %s", t, via, rtt.Round(time.Microsecond)))
				fd := f("no-return-route", Error, fmt.Sprintf("%s answers the gateway but not the pool %s: the VPC has no route back for the pool, so clients' replies are lost", t, pool), ev...)
				fd.Cloud = nonEmpty(cloud, linux)
				r.add(fd)
				return
			}
		}
	}
	fd := f("probe-unanswered", Warning, fmt.Sprintf("no probe in %s answered a ping at all: cannot tell whether the pool %s is routed back", vpc, pool), ev...)
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
func neighbours(dev string, vpc netip.Prefix) []netip.Addr {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return nil
	}
	fam := unix.AF_INET
	if vpc.Addr().Is6() {
		fam = unix.AF_INET6
	}
	ns, err := netlink.NeighList(l.Attrs().Index, fam)
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

func liveTables() (map[int][]explain.Route, map[int][]explain.Rule, error) {
	tables := map[int][]explain.Route{}
	rules := map[int][]explain.Rule{}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, nil, fmt.Errorf("list routes: %w", err)
		}
		for _, x := range rs {
			tables[x.Table] = append(tables[x.Table], explain.FromNetlinkRoute(x, fam))
		}
		nrs, err := netlink.RuleList(fam)
		if err != nil {
			return nil, nil, fmt.Errorf("list rules: %w", err)
		}
		for _, x := range nrs {
			if x.Family == fam {
				rules[fam] = append(rules[fam], explain.FromNetlinkRule(x))
			}
		}
	}
	return tables, rules, nil
}

// sampleInside returns an address of p that is not one of this host's own
// (the gateway's address in a VPC would only prove local delivery).
func sampleInside(p netip.Prefix, tables map[int][]explain.Route) netip.Addr {
	a := firstHost(p)
	for range 8 {
		if !slices.ContainsFunc(tables[255], func(r explain.Route) bool { return r.Type == explain.TypeLocal && r.Dst.Contains(a) }) {
			return a
		}
		a = a.Next()
	}
	return a
}

// liveLocal returns the local table only.
func liveLocal() map[int][]explain.Route {
	out := map[int][]explain.Route{}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: 255}, netlink.RT_FILTER_TABLE)
		if err != nil {
			continue
		}
		for _, x := range rs {
			out[255] = append(out[255], explain.FromNetlinkRoute(x, fam))
		}
	}
	return out
}

func prefixOf(n *net.IPNet) netip.Prefix {
	a, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// ping sends up to three ICMP echo requests from src to dst and waits for a
// reply to one of them.
func ping(ctx context.Context, src, dst netip.Addr, timeout time.Duration) (time.Duration, error) {
	network, proto := "ip4:icmp", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, src.String())
	if err != nil {
		return 0, fmt.Errorf("open ICMP socket on %s: %w", src, err)
	}
	defer c.Close()
	id := (os.Getpid() ^ int(time.Now().UnixNano())) & 0xffff
	buf := make([]byte, 1500)
	for seq := 1; seq <= 3; seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("clearpath-doctor")}}
		b, _ := msg.Marshal(nil)
		sent := time.Now()
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return 0, err
		}
		deadline := sent.Add(timeout / 3)
		c.SetReadDeadline(deadline)
		for {
			nr, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(proto, buf[:nr])
			if err != nil {
				continue
			}
			fa, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if e, ok := m.Body.(*icmp.Echo); ok && m.Type == replyType && e.ID == id && fa.Unmap() == dst {
				return time.Since(sent), nil
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	return 0, errors.New("no reply")
}

// checkHostGuard compares the gateway's nftables table (server/hostguard)
// with the configuration: missing while the gateway runs is an error (the
// host is open to the tunnels), different is a warning (the file changed
// without a reload, or someone edited the table).
func checkHostGuard(r *Report, cfg *config.Config, running bool) {
	name := "table inet " + hostguard.TableName
	exists, live, err := hostguard.Live()
	switch {
	case err != nil:
		r.add(Finding{ID: "host-guard-unknown", Severity: Warning, Title: "cannot read " + name, Evidence: []string{err.Error()}})
	case !exists && running:
		r.add(Finding{ID: "host-guard-missing", Severity: Error, Title: name + " is missing: the gateway host is open to every tunnel user",
			Fix: []string{"vpn-gateway reload   # or restart the gateway: it installs the table at start"}})
	case !exists:
		r.add(Finding{ID: "host-guard-off", Severity: OK, Title: name + " absent (the gateway is not running)"})
	case !running:
		r.add(Finding{ID: "host-guard-stale", Severity: Info, Title: name + " left by a gateway that is not running: it drops only traffic of group interfaces, the next start replaces it"})
	default:
		if diff := hostguard.Compare(hostguard.FromConfig(cfg), live); len(diff) > 0 {
			r.add(Finding{ID: "host-guard-differs", Severity: Warning, Title: name + " differs from the configuration", Evidence: diff,
				Fix: []string{"vpn-gateway reload"}})
			return
		}
		var ev []string
		for _, l := range live {
			if l.Drop {
				ev = append(ev, fmt.Sprintf("%s: %d packets dropped", l.Comment, l.Packets))
			}
		}
		r.add(Finding{ID: "host-guard", Severity: OK, Title: name + " closes the gateway host to the tunnels", Evidence: ev})
	}
}
