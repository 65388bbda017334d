package routes

// Issue 23: what a real Mac would break, each against the XNU model
// (bsdxnu_test.go), which was extended so that each test fails on the
// code before its fix.

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func fullTunnel(blockLAN bool) TunnelSpec {
	return TunnelSpec{Device: "utun5", Prefixes: []netip.Prefix{pfx("0.0.0.0/0")}, Addresses: []netip.Prefix{pfx("100.64.0.2/32")},
		Endpoint: endpoint, BlockLAN: blockLAN}
}

// Point 1: routes into the utun must leave rt_ifa an IPv4 address of the
// utun, or unbound sockets get a bogus source (in_pcbladdr) and the
// gateway drops their packets; `route -n get` shows it as "interface
// address".
func TestBSDOnLinkRoutesGiveUnboundSocketsTheTunnelAddress(t *testing.T) {
	k, sys, e := macSession(t)
	reconcile(t, sys, e, fullTunnel(false))
	for _, dst := range []string{"10.10.1.1", "203.0.113.9"} {
		src, err := k.source(netip.MustParseAddr(dst))
		if err != nil || src != netip.MustParseAddr("100.64.0.2") {
			t.Errorf("an unbound socket to %s gets source %v (%v), want the tunnel address 100.64.0.2", dst, src, err)
		}
		if r := lookup(t, sys, dst); r.Src != netip.MustParseAddr("100.64.0.2") {
			t.Errorf("route get %s: interface address %v, want 100.64.0.2", dst, r.Src)
		}
	}
	// The LAN and the pinned endpoint keep the LAN address.
	for _, dst := range []string{"192.168.1.50", "198.51.100.1"} {
		if src, err := k.source(netip.MustParseAddr(dst)); err != nil || src != netip.MustParseAddr("192.168.1.23") {
			t.Errorf("source to %s: %v (%v), want 192.168.1.23", dst, src, err)
		}
	}
}

// Point 2: with BlockLAN the router gets a host route on en0; ARP takes
// it only with a whole sockaddr_dl as gateway, else the endpoint's next
// hop never resolves.
func TestBSDBlockLANRouterRouteResolves(t *testing.T) {
	k, sys, e := macSession(t)
	reconcile(t, sys, e, fullTunnel(true))
	for _, dst := range []string{"198.51.100.1", "192.168.1.1"} {
		dev, err := k.forward(netip.MustParseAddr(dst))
		if err != nil || dev != "en0" {
			t.Errorf("%s leaves via %q (%v), want en0", dst, dev, err)
		}
	}
	snap, _ := sys.Snapshot()
	for _, r := range snap.Routes {
		if r.Dst == pfx("192.168.1.1/32") && r.Protocol == Protocol && !strings.Contains(strings.Join(r.Flags, ""), "L") {
			t.Errorf("the router's host route has no link-layer info: %s %v", r, r.Flags)
		}
	}
}

// wakes reports whether the watcher would re-plan for a broadcast the
// model sent since index from, and whether one of our own did.
func wakes(k *xnu, from int) (others, ours bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.casts[from:] {
		if bsdChangeMatters(c.Type, c.Flags, c.Pid, xnuSelf) {
			if c.Pid == xnuSelf {
				ours = true
			} else {
				others = true
			}
		}
	}
	return others, ours
}

// Point 4: another VPN's `route delete 0.0.0.0/1` or a `route -n flush`
// removes our routes; the deletion broadcast carries the deleted route's
// flags (RTF_PROTO1 included) and the deleting process's pid. The watcher
// must wake for it and the re-plan put our routes back; our own changes
// must not wake it (no re-plan loop).
func TestBSDWatcherSeesOthersDeletingOurRoutes(t *testing.T) {
	k, sys, e := macSession(t)
	from := len(k.casts)
	reconcile(t, sys, e, fullTunnel(false))
	if _, ours := wakes(k, from); ours {
		t.Fatalf("our own adds wake the watcher")
	}
	half := bsdRouteMsg{Type: rtmDelete, Flags: rtfUp | rtfStatic | rtfProto1, Dst: in4("0.0.0.0"), Netmask: bsdMask(1, false)}
	flush := func(pid int) { // route -n flush: every route via a gateway
		k.mu.Lock()
		var gws []bsdRouteMsg
		for _, m := range k.table {
			if m.Flags&rtfGateway != 0 && m.Flags&rtfWasCloned == 0 {
				gws = append(gws, bsdRouteMsg{Type: rtmDelete, Flags: m.Flags, Index: m.Index, Dst: m.Dst, Netmask: m.Netmask})
			}
		}
		k.mu.Unlock()
		for _, m := range gws {
			if _, err := k.requestAs(pid, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name   string
		attack func()
	}{
		{"another VPN deletes 0.0.0.0/1", func() {
			if _, err := k.requestAs(777, half); err != nil {
				t.Fatal(err)
			}
		}},
		{"route -n flush", func() { flush(778) }},
	} {
		name, attack := c.name, c.attack
		from := len(k.casts)
		attack()
		if others, _ := wakes(k, from); !others {
			t.Errorf("%s: the watcher ignores it", name)
			continue
		}
		// The agent re-plans, as the watcher makes it do.
		if !slices.ContainsFunc(k.table, func(m bsdRouteMsg) bool { return mustKey(m) == xnuKey{dst: pfx("0.0.0.0/0")} }) {
			k.table = append(k.table, dump(macEn0, "UGScg", in4("0.0.0.0"), in4("192.168.1.1"), kmask(0, false))) // configd's default back
		}
		reconcile(t, sys, e, fullTunnel(false))
		for dst, want := range map[string]string{"10.10.1.1": "utun5", "198.51.100.1": "en0"} {
			if dev, err := k.forward(netip.MustParseAddr(dst)); dev != want {
				t.Errorf("%s, re-planned: %s leaves via %q (%v), want %s", name, dst, dev, err, want)
			}
		}
	}
}

// Point 5: NetBird marks its routes RTF_PROTO1 too. Ours are the marked
// routes our journal names (or on a utun carrying one it names); the
// reconcile and the sweep leave NetBird's alone.
func TestBSDOwnershipIsProto1AndJournaled(t *testing.T) {
	k, sys, e := macSession(t)
	k.attach(30, "utun100", pfx("100.100.0.1/32"))
	netbird := []bsdRouteMsg{
		{Type: rtmAdd, Flags: rtfUp | rtfStatic | rtfProto1 | rtfHost | rtfGateway, Dst: in4("203.0.113.77"), Gateway: in4("192.168.1.1")},
		{Type: rtmAdd, Flags: rtfUp | rtfStatic | rtfProto1, Dst: in4("100.100.0.0"), Netmask: bsdMask(16, false), Gateway: bsdAddr{Family: bsdAFLink, Index: 30, Name: "utun100", Full: true}},
	}
	for _, m := range netbird {
		if _, err := k.requestAs(900, m); err != nil {
			t.Fatal(err)
		}
	}
	theirs := func(stage string) {
		t.Helper()
		for _, dst := range []string{"203.0.113.77", "100.100.7.7"} {
			if dev, err := k.forward(netip.MustParseAddr(dst)); err != nil || dev != map[string]string{"203.0.113.77": "en0", "100.100.7.7": "utun100"}[dst] {
				t.Errorf("%s: NetBird's route for %s is gone: leaves via %q (%v)", stage, dst, dev, err)
			}
		}
	}
	reconcile(t, sys, e, fullTunnel(false))
	theirs("after our reconcile")
	snap, _ := sys.Snapshot()
	owned, _ := OwnedItems(snap)
	if len(owned) != 5 {
		t.Errorf("we own %d routes, want our 5: %v", len(owned), owned)
	}
	// The pushed routes change: a split tunnel now.
	split := TunnelSpec{Device: "utun5", Prefixes: []netip.Prefix{pfx("10.10.0.0/16")}, Addresses: []netip.Prefix{pfx("100.64.0.2/32")}, Endpoint: endpoint}
	reconcile(t, sys, e, split)
	theirs("after a re-plan")
	rep, err := e.End()
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("end: %v %v", err, rep.Problems)
	}
	theirs("after our restore")
	snap, _ = sys.Snapshot()
	for _, r := range snap.Routes {
		if r.Device == "utun5" && r.Dst.Bits() < 32 {
			t.Errorf("ours left after End: %s", r)
		}
	}
}

// Point 3: when nothing routes the endpoint for a moment (configd
// deleting and re-adding the default, Wi-Fi off), the re-plan must not
// delete the pin and let wireguard-go's own UDP loop into the tunnel: the
// pin stays while it is in the table, a blackhole takes its place when it
// is gone (wg-quick's darwin.bash does the same), and the real pin comes
// back with the network.
func TestBSDEndpointNeverLoopsIntoTheTunnel(t *testing.T) {
	ep := endpoint
	k, sys, e := macSession(t)
	notTunnel := func(stage string) {
		t.Helper()
		if dev, err := k.forward(ep); dev == "utun5" {
			t.Errorf("%s: the endpoint %s goes into the tunnel (%v): wireguard-go's UDP loops", stage, ep, err)
		}
	}
	deleteDefault := func(k *xnu, pid int) {
		t.Helper()
		if _, err := k.requestAs(pid, bsdRouteMsg{Type: rtmDelete, Flags: rtfUp | rtfGateway | rtfStatic, Dst: in4("0.0.0.0"), Netmask: bsdMask(0, false)}); err != nil {
			t.Fatal(err)
		}
	}
	addDefault := func(k *xnu, gw string) {
		t.Helper()
		if _, err := k.requestAs(50, bsdRouteMsg{Type: rtmAdd, Flags: rtfUp | rtfGateway | rtfStatic, Dst: in4("0.0.0.0"), Netmask: bsdMask(0, false), Gateway: in4(gw)}); err != nil {
			t.Fatal(err)
		}
	}

	reconcile(t, sys, e, fullTunnel(false))
	deleteDefault(k, 50) // configd, inside the debounce
	reconcile(t, sys, e, fullTunnel(false))
	notTunnel("default deleted")
	addDefault(k, "192.168.1.1")
	reconcile(t, sys, e, fullTunnel(false))
	if dev, err := k.forward(ep); dev != "en0" {
		t.Errorf("default back: endpoint via %q (%v), want en0", dev, err)
	}

	// Wi-Fi off: the LAN's routes go, our pin with them (its interface
	// address is gone), then the re-plan runs.
	k.mu.Lock()
	k.table = slices.DeleteFunc(k.table, func(m bsdRouteMsg) bool {
		return m.Index == macEn0 && (m.Dst.Family == bsdAFInet)
	})
	k.addrs = slices.DeleteFunc(k.addrs, func(a bsdIfAddrMsg) bool { return a.Index == macEn0 && a.Addr.Family == bsdAFInet })
	k.mu.Unlock()
	reconcile(t, sys, e, fullTunnel(false))
	notTunnel("Wi-Fi off")
	// Another network: a new address and router; the pin follows.
	k.mu.Lock()
	k.addrs = append(k.addrs, bsdIfAddrMsg{Index: macEn0, Addr: in4("10.0.5.23"), Mask: kmask(24, false)})
	k.table = append(k.table, dump(macEn0, "UCS", in4("10.0.5.0"), lnk(macEn0), kmask(24, false)))
	k.mu.Unlock()
	addDefault(k, "10.0.5.1")
	reconcile(t, sys, e, fullTunnel(false))
	if dev, err := k.forward(ep); dev != "en0" {
		t.Errorf("new network: endpoint via %q (%v), want en0", dev, err)
	}
	if r := lookup(t, sys, ep.String()); r.Gateway != netip.MustParseAddr("10.0.5.1") {
		t.Errorf("new network: pin %s, want via 10.0.5.1", r)
	}
}

// Point 3, make before break: when the pin moves to a new router it was
// deleted and added again, two route-socket writes apart, and a packet
// sent in between (wireguard-go's keepalive, a handshake) went into
// 0.0.0.0/1 through the utun. The pin moves in place (RTM_CHANGE, as
// Mozilla VPN moves its exclusion routes); from a blackhole, whose flags
// RTM_CHANGE cannot change, a twin one bit shorter holds the endpoint
// outside the tunnel until the new pin is in. After every write of ours
// the endpoint must leave by en0 or be dropped, never by the utun.
func TestBSDRepinIsMakeBeforeBreak(t *testing.T) {
	ep := endpoint
	k, sys, e := macSession(t)
	reconcile(t, sys, e, fullTunnel(false))
	var loops []string
	stage := ""
	k.watch = func() {
		if dev, _ := k.forward(ep); dev == "utun5" {
			loops = append(loops, stage)
		}
	}
	setDefault := func(gw string) {
		t.Helper()
		def := bsdRouteMsg{Type: rtmDelete, Flags: rtfUp | rtfGateway | rtfStatic, Dst: in4("0.0.0.0"), Netmask: bsdMask(0, false)}
		if _, err := k.requestAs(50, def); err != nil {
			t.Fatal(err)
		}
		def.Type, def.Gateway = rtmAdd, in4(gw)
		if _, err := k.requestAs(50, def); err != nil {
			t.Fatal(err)
		}
	}

	// configd moves the default to another router of the same LAN.
	stage = "new router on the LAN"
	setDefault("192.168.1.254")
	reconcile(t, sys, e, fullTunnel(false))
	if r := lookup(t, sys, ep.String()); r.Gateway != netip.MustParseAddr("192.168.1.254") || r.Device != "en0" {
		t.Errorf("%s: pin %s, want via 192.168.1.254 dev en0", stage, r)
	}
	if n := len(k.sent(rtmChange)); n != 1 {
		t.Errorf("%s: %d RTM_CHANGE, want the pin changed in place", stage, n)
	}
	for _, m := range k.sent(rtmDelete) {
		if mustKey(m).dst == netip.PrefixFrom(ep, 32) {
			t.Errorf("%s: the pin was deleted (RTM_DELETE %s)", stage, bsdFlagNames(m.Flags))
		}
	}

	// Wi-Fi off: the pin goes with the LAN's routes, a blackhole holds
	// its place; then another network, and the pin comes back from the
	// blackhole.
	stage = "Wi-Fi off"
	k.mu.Lock()
	k.table = slices.DeleteFunc(k.table, func(m bsdRouteMsg) bool { return m.Index == macEn0 && m.Dst.Family == bsdAFInet })
	k.addrs = slices.DeleteFunc(k.addrs, func(a bsdIfAddrMsg) bool { return a.Index == macEn0 && a.Addr.Family == bsdAFInet })
	k.mu.Unlock()
	reconcile(t, sys, e, fullTunnel(false))
	if r := lookup(t, sys, ep.String()); r.Type != TypeBlackhole {
		t.Fatalf("%s: pin %s, want a blackhole", stage, r)
	}
	stage = "from the blackhole to a new network"
	k.mu.Lock()
	k.addrs = append(k.addrs, bsdIfAddrMsg{Index: macEn0, Addr: in4("10.0.5.23"), Mask: kmask(24, false)})
	k.table = append(k.table, dump(macEn0, "UCS", in4("10.0.5.0"), lnk(macEn0), kmask(24, false)))
	k.mu.Unlock()
	if _, err := k.requestAs(50, bsdRouteMsg{Type: rtmAdd, Flags: rtfUp | rtfGateway | rtfStatic, Dst: in4("0.0.0.0"), Netmask: bsdMask(0, false), Gateway: in4("10.0.5.1")}); err != nil {
		t.Fatal(err)
	}
	reconcile(t, sys, e, fullTunnel(false))
	if r := lookup(t, sys, ep.String()); r.Type != TypeUnicast || r.Gateway != netip.MustParseAddr("10.0.5.1") || r.Dst != netip.PrefixFrom(ep, 32) {
		t.Errorf("%s: pin %s, want via 10.0.5.1", stage, r)
	}
	snap, _ := sys.Snapshot()
	if own, _ := OwnedItems(snap); slices.ContainsFunc(own, func(r Route) bool { return r.Dst.Bits() == 31 }) {
		t.Errorf("%s: the bridge stayed: %v", stage, own)
	}
	if len(loops) > 0 {
		t.Errorf("the endpoint resolved into the utun after a write of ours during: %q", loops)
	}
	// The session still ends clean (the lookups moved with the network:
	// notes, not failures).
	if rep, err := e.End(); err != nil || hasFailure(rep) {
		t.Errorf("end: %v %v", err, rep.Problems)
	}
	snap, _ = sys.Snapshot()
	if own, _ := OwnedItems(snap); len(own) != 0 {
		t.Errorf("after the end: %v", own)
	}
}

// Point 8: kill -9 of the agent. The utun goes with the process and
// if_rtdel takes the routes on it; the pin, the router's host route (on
// en0) and the IPv6 refusals (on lo0) stay until a restore runs. launchd
// starts the agent again at once (KeepAlive, RunAtLoad: packaging
// tests), and the agent's start restores from the journal: then nothing
// of ours remains and IPv6 works again.
func TestBSDAgentStartRestoresWhatACrashLeft(t *testing.T) {
	k := macWithTunnel()
	sys := newBSDSystem(k)
	before, _ := sys.Snapshot()
	dir := t.TempDir()
	e := NewEngine(sys, dir)
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	reconcile(t, sys, e, fullTunnel(true))
	k.detach(utun5) // kill -9
	snap, _ := sys.Snapshot()
	left, _ := OwnedItems(snap)
	if len(left) != 4 {
		t.Fatalf("after the crash %d of ours remain, want pin, router route, ::/1, 8000::/1: %v", len(left), left)
	}
	if r, err := sys.Lookup(Query{Dst: netip.MustParseAddr("2001:db8:ffff::200")}); err != nil || r.Type != TypeUnreachable {
		t.Fatalf("model: IPv6 not refused after the crash: %s %v", r, err)
	}
	// The agent starts again (agent.Run: Recover before anything else).
	rep, err := NewEngine(newBSDSystem(k), dir).Recover()
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("recover: %v %v", err, rep.Problems)
	}
	after, _ := sys.Snapshot()
	before.Routes = slices.DeleteFunc(before.Routes, func(r Route) bool { return r.Device == "utun5" })
	if d := Compare(before, after); !d.Empty() {
		t.Errorf("not restored: added %v removed %v", d.AddedRoutes, d.RemovedRoutes)
	}
	if dev, err := k.forward(netip.MustParseAddr("2001:db8:ffff::200")); err != nil || dev != "en0" {
		t.Errorf("IPv6 after the restart: %q %v", dev, err)
	}
}

// Point 9: a delete copied every flag of the dump entry; route_output
// refuses RTF_PROXY (set only by the kernel) with EINVAL, and flags like
// RTF_ROUTER or RTF_IFREF mean nothing in a request. Deletes carry only
// what selects the route.
func TestBSDDeleteCarriesOnlySelectingFlags(t *testing.T) {
	k := macWithTunnel()
	k.table = append(k.table, dump(macEn0, "UGSYr", in4("10.200.0.0"), in4("192.168.1.9"), kmask(16, false)))
	sys := newBSDSystem(k)
	snap, _ := sys.Snapshot()
	var proxy *Route
	for i := range snap.Routes {
		if snap.Routes[i].Dst == pfx("10.200.0.0/16") {
			proxy = &snap.Routes[i]
		}
	}
	if proxy == nil {
		t.Fatal("no proxy route in the snapshot")
	}
	if err := sys.Apply(Change{Op: OpDelRoute, Route: proxy}); err != nil {
		t.Fatalf("delete %s %v: %v", proxy, proxy.Flags, err)
	}
	allowed := rtfUp | rtfGateway | rtfHost | rtfStatic | rtfIfScope | rtfProto1
	for _, m := range k.sent(rtmDelete) {
		if m.Flags&^allowed != 0 {
			t.Errorf("RTM_DELETE with flags %v", bsdFlagNames(m.Flags&^allowed))
		}
	}
	if dev, err := k.forward(netip.MustParseAddr("10.200.1.1")); err != nil || dev != "utun5" && dev != "en0" {
		t.Errorf("10.200.1.1 after the delete: %q %v", dev, err)
	}
	if i := k.match(netip.MustParseAddr("10.200.1.1")); i >= 0 && mustKey(k.table[i]).dst == pfx("10.200.0.0/16") {
		t.Errorf("the route is still there")
	}
}

// Point 10: when Tunnelblick is force-quit and its utun goes, XNU takes
// the utun's routes (if_rtproto_del: if_rtdel on every route whose
// interface it was) and the local routes of its addresses
// (in6_purgeaddrs): what remains is OpenVPN's host route to its server
// via en0 (its --down script never ran), and the DNS it set. The
// recorded Mac "after the force-quit, utun gone" must be exactly that.
func TestBSDTunnelblickForceQuitIsWhatXNULeaves(t *testing.T) {
	ifs, addrs := macInterfaces(true) // Tunnelblick running: utun3 and its routes
	k := newXNU(ifs, addrs, append(macHealthyDump(), tunnelblickLeftovers()...))
	k.detach(macUtun)
	got, _ := newBSDSystem(k).Snapshot()
	fixture, _ := newBSDSystem(recordedMac(true, false)).Snapshot()
	if d := Compare(fixture, got); !d.Empty() {
		t.Errorf("the fixture shows routes XNU removed with the utun: %v; lacks %v", d.RemovedRoutes, d.AddedRoutes)
	}
	for _, r := range fixture.Routes {
		if strings.HasPrefix(r.Device, "link#") || slices.ContainsFunc(r.Flags, func(f string) bool { return strings.HasSuffix(f, "link#15") }) {
			t.Errorf("a route on the vanished utun: %s %v", r, r.Flags)
		}
	}
}
