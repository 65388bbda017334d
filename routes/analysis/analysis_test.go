package analysis

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/routes"
)

// Fixture builders: each fixture is a snapshot as `vpn routes snapshot`
// would record it on a real machine in that state. They are also written to
// testdata/ (go test -update) so they can be fed to `vpn doctor --snapshot`.

func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func a(s string) netip.Addr   { return netip.MustParseAddr(s) }

func r4(table int, dst, gw, dev string, proto int) routes.Route {
	r := routes.Route{Family: routes.FamilyV4, Table: table, Type: routes.TypeUnicast, Dst: p(dst), Device: dev, Protocol: proto}
	if gw != "" {
		r.Gateway = a(gw)
	}
	if p(dst).Addr().Is6() {
		r.Family = routes.FamilyV6
	}
	return r
}

func typed(t routes.RouteType, r routes.Route) routes.Route { r.Type = t; return r }

func baseRules() []routes.Rule {
	var out []routes.Rule
	for _, f := range []routes.Family{routes.FamilyV4, routes.FamilyV6} {
		out = append(out,
			routes.Rule{Family: f, Priority: 0, Table: 255, SuppressPrefixLen: -1, Protocol: 2, Action: "lookup"},
			routes.Rule{Family: f, Priority: 32766, Table: 254, SuppressPrefixLen: -1, Protocol: 2, Action: "lookup"})
	}
	return out
}

func linuxLaptop() *routes.Snapshot {
	return &routes.Snapshot{OS: "linux",
		Links: []routes.Link{{Index: 1, Name: "lo", Up: true}, {Index: 2, Name: "eth0", Up: true}},
		Addresses: []routes.Address{{Device: "lo", Prefix: p("127.0.0.1/8")}, {Device: "eth0", Prefix: p("10.1.2.10/24")},
			{Device: "eth0", Prefix: p("2001:db8:1::10/64")}},
		Routes: []routes.Route{
			r4(254, "0.0.0.0/0", "10.1.2.1", "eth0", 4), r4(254, "10.1.2.0/24", "", "eth0", 2),
			r4(254, "::/0", "2001:db8:1::1", "eth0", 4), r4(254, "2001:db8:1::/64", "", "eth0", 2),
			typed(routes.TypeLocal, r4(255, "10.1.2.10/32", "", "eth0", 2)),
		},
		Rules: baseRules(),
	}
}

func withOurLeftovers(s *routes.Snapshot) *routes.Snapshot {
	s.Routes = append(s.Routes, typed(routes.TypeThrow, r4(7411, "10.1.2.0/24", "", "", 197)))
	s.Rules = append(s.Rules,
		routes.Rule{Family: routes.FamilyV4, Priority: 4100, From: p("10.1.2.10/32"), Table: 254, SuppressPrefixLen: -1, Protocol: 197, Action: "lookup"},
		routes.Rule{Family: routes.FamilyV4, Priority: 4200, FwMark: 0x7411, Invert: true, Table: 7411, SuppressPrefixLen: -1, Protocol: 197, Action: "lookup"})
	return s
}

func withWgQuickCrash(s *routes.Snapshot) *routes.Snapshot {
	for _, f := range []routes.Family{routes.FamilyV4, routes.FamilyV6} {
		s.Rules = append(s.Rules,
			routes.Rule{Family: f, Priority: 32764, Table: 254, SuppressPrefixLen: 0, Protocol: 3, Action: "lookup"},
			routes.Rule{Family: f, Priority: 32765, FwMark: 0xca6c, Invert: true, Table: 51820, SuppressPrefixLen: -1, Protocol: 3, Action: "lookup"})
	}
	return s
}

// macFixture loads a macOS snapshot. Unlike the Linux ones these are not
// built here: routes' parser writes them from route messages as XNU hands
// them out (routes/bsdrecorded_test.go; UPDATE_FIXTURES=1 go test ./routes
// -run Fixtures), so doctor is tested on what a Mac really shows.
func macFixture(tb testing.TB, name string) *routes.Snapshot {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	var s routes.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return &s
}

func agent(prefixes ...string) *AgentState {
	st := &AgentState{Interface: "cp0", Addresses: []netip.Prefix{p("100.64.0.2/32")}, Endpoint: netip.MustParseAddrPort("198.51.100.1:51820"),
		LastHandshake: time.Date(2026, 11, 23, 11, 59, 30, 0, time.UTC), MTU: 1420}
	for _, s := range prefixes {
		st.Prefixes = append(st.Prefixes, p(s))
	}
	return st
}

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// withTunnel installs what a running ClearPath session has.
func withTunnel(s *routes.Snapshot, prefixes ...string) *routes.Snapshot {
	s.Links = append(s.Links, routes.Link{Name: "cp0", Up: true})
	s.Addresses = append(s.Addresses, routes.Address{Device: "cp0", Prefix: p("100.64.0.2/32")})
	var pf []netip.Prefix
	for _, x := range prefixes {
		pf = append(pf, p(x))
	}
	for _, c := range routes.PlanTunnel(s, routes.TunnelSpec{Device: "cp0", Prefixes: pf, Addresses: []netip.Prefix{p("100.64.0.2/32")}}) {
		if c.Route != nil {
			s.Routes = append(s.Routes, *c.Route)
		} else {
			s.Rules = append(s.Rules, *c.Rule)
		}
	}
	return s
}

func ids(rep Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.ID+":"+f.Severity)
	}
	return out
}

func TestFixtures(t *testing.T) {
	ipv6Leaky := withTunnel(linuxLaptop(), "0.0.0.0/0")
	// drop the unreachable ::/0 ClearPath would add: the leak doctor must see
	ipv6Leaky.Routes = slices.DeleteFunc(ipv6Leaky.Routes, func(r routes.Route) bool { return r.Type == routes.TypeUnreachable })
	blackholed := linuxLaptop()
	blackholed.Routes[0] = typed(routes.TypeBlackhole, r4(254, "0.0.0.0/0", "", "", 4))
	tailscale := withTunnel(linuxLaptop(), "10.10.0.0/16")
	tailscale.Links = append(tailscale.Links, routes.Link{Name: "tailscale0", Up: true})
	tailscale.Routes = append(tailscale.Routes, r4(52, "100.100.0.0/16", "", "tailscale0", 3))
	tailscale.Rules = append(tailscale.Rules, routes.Rule{Family: routes.FamilyV4, Priority: 5270, Table: 52, SuppressPrefixLen: -1, Action: "lookup"})
	deadDNS := linuxLaptop()
	deadDNS.Routes = append(deadDNS.Routes, r4(254, "10.8.0.0/24", "", "tun0", 3))
	loop := withTunnel(linuxLaptop(), "10.10.0.0/16")
	loop.Routes = append(loop.Routes, r4(100, "198.51.100.0/24", "", "cp0", 3))
	loop.Rules = append(loop.Rules, routes.Rule{Family: routes.FamilyV4, Priority: 100, Table: 100, SuppressPrefixLen: -1, Action: "lookup"})
	stale := agent("10.10.0.0/16")
	stale.LastHandshake = now.Add(-10 * time.Minute)
	// The layout before the kernel's IPv6 source-address retry was taken
	// into account: the unreachable ::/0 is there, but the plain source
	// rule lets a new connection out by main's default route.
	sourceLeak := withTunnel(linuxLaptop(), "0.0.0.0/0")
	for i := range sourceLeak.Rules {
		if sourceLeak.Rules[i].Family == routes.FamilyV6 && sourceLeak.Rules[i].Priority == routes.PrioritySourceRules {
			sourceLeak.Rules[i].SuppressPrefixLen = -1
		}
	}
	fullAgent := func() *AgentState { s := agent("0.0.0.0/0"); s.FullTunnel = true; return s }
	noDefault := linuxLaptop()
	noDefault.Routes = noDefault.Routes[1:]
	twoDefaults := linuxLaptop()
	twoDefaults.Routes = append(twoDefaults.Routes, r4(254, "0.0.0.0/0", "10.1.2.254", "eth0", 16))
	endpointLeft := linuxLaptop()
	endpointLeft.Routes = append(endpointLeft.Routes, r4(254, "198.51.100.1/32", "10.1.2.1", "eth0", 4))
	smallPath := agent("10.10.0.0/16")
	smallPath.PathMTU = 1400
	deadTun, noCarrier, liveTun := withDeadTun(linuxLaptop(), 0), withNoCarrierTun(linuxLaptop()), withDeadTun(linuxLaptop(), 1)
	movedPin, samePin, validPin := withMovedNetwork(withTunnel(linuxLaptop(), "10.10.0.0/16")), withTunnel(linuxLaptop(), "10.10.0.0/16"), linuxLaptop()
	samePin.Routes = append(samePin.Routes, r4(254, "198.51.100.1/32", "10.1.2.254", "eth0", 4))
	validPin.Routes = append(validPin.Routes, r4(254, "203.0.113.7/32", "10.1.2.254", "eth0", 4))

	cases := []struct {
		name  string
		snap  *routes.Snapshot
		agent *AgentState
		dns   []string
		want  []string
	}{
		{"linux-healthy", linuxLaptop(), nil, []string{"10.1.2.1"}, nil},
		{"linux-connected-healthy", withTunnel(linuxLaptop(), "10.10.0.0/16"), agent("10.10.0.0/16"), nil, nil},
		{"linux-our-leftovers", withOurLeftovers(linuxLaptop()), nil, nil, []string{"leftover-owned:error"}},
		{"linux-wg-quick-crash", withWgQuickCrash(linuxLaptop()), nil, nil, []string{"orphan-rule:warning"}},
		{"linux-blackholed-default", blackholed, nil, nil, []string{"default-hijack:error"}},
		{"linux-tailscale-alongside", tailscale, agent("10.10.0.0/16"), nil, []string{"rule-priority-conflict:info"}},
		{"linux-overlap", withTunnel(linuxLaptop(), "10.0.0.0/8"), agent("10.0.0.0/8"), nil, []string{"subnet-overlap:info"}},
		{"linux-ipv6-leak", ipv6Leaky, func() *AgentState { s := agent("0.0.0.0/0"); s.FullTunnel = true; return s }(), nil, []string{"ipv6-leak:error", "orphan-rule:warning", "subnet-overlap:info"}},
		{"linux-endpoint-loop", loop, agent("10.10.0.0/16"), nil, []string{"endpoint-loop:error", "rule-priority-conflict:info"}},
		{"linux-dns-via-dead-tun", deadDNS, nil, []string{"10.8.0.1"}, []string{"dead-device-route:warning", "dns-unroutable:error"}},
		{"linux-handshake-stale", withTunnel(linuxLaptop(), "10.10.0.0/16"), stale, nil, []string{"handshake-stale:warning"}},
		{"linux-ipv6-leak-by-source-rule", sourceLeak, fullAgent(), nil, []string{"ipv6-leak:error", "subnet-overlap:info"}},
		{"linux-full-tunnel-healthy", withTunnel(linuxLaptop(), "0.0.0.0/0"), fullAgent(), nil, []string{"subnet-overlap:info"}},
		{"linux-default-missing", noDefault, nil, nil, []string{"default-missing:error"}},
		{"linux-default-duplicate", twoDefaults, nil, nil, []string{"default-duplicate:warning"}},
		{"linux-stale-endpoint-route", endpointLeft, nil, nil, []string{"stale-endpoint-route:warning"}},
		{"linux-rp-filter-drop", withTunnel(linuxLaptop(), "10.10.0.0/16"), agent("10.10.0.0/16"), nil, []string{"rp-filter-drop:warning"}},
		{"linux-rp-filter-with-src-valid-mark", withTunnel(linuxLaptop(), "10.10.0.0/16"), agent("10.10.0.0/16"), nil, nil},
		{"linux-mtu-too-large", withTunnel(linuxLaptop(), "10.10.0.0/16"), smallPath, nil, []string{"mtu-too-large:warning"}},
		{"linux-persistent-tun-dead", deadTun, nil, nil, []string{"dead-tun:warning"}},
		{"linux-tun-no-carrier", noCarrier, nil, nil, []string{"dead-tun:error", "default-hijack:info"}},
		{"linux-persistent-tun-attached", liveTun, nil, nil, nil},
		{"linux-endpoint-pin-old-network", movedPin, agent("10.10.0.0/16"), nil, []string{"endpoint-pin-stale:error"}},
		{"linux-endpoint-pin-old-router", samePin, agent("10.10.0.0/16"), nil, []string{"endpoint-pin-stale:error"}},
		{"linux-host-route-via-second-router", validPin, nil, nil, nil},
		{"darwin-healthy", macFixture(t, "darwin-healthy"), nil, nil, nil},
		{"darwin-tunnelblick-force-quit", macFixture(t, "darwin-tunnelblick-force-quit"), nil, nil, []string{"stale-endpoint-route:warning"}},
		{"darwin-tunnelblick-utun-down", macFixture(t, "darwin-tunnelblick-utun-down"), nil, nil, []string{"dead-device-route:error", "stale-endpoint-route:warning"}},
	}
	sysctlsOf := map[string]map[string]string{
		"linux-rp-filter-drop":                {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.all.src_valid_mark": "0"},
		"linux-rp-filter-with-src-valid-mark": {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.all.src_valid_mark": "1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var dns []netip.Addr
			for _, d := range c.dns {
				dns = append(dns, a(d))
			}
			sysctls := sysctlsOf[c.name]
			if sysctls == nil {
				sysctls = map[string]string{}
			}
			in := Input{Snapshot: c.snap, Agent: c.agent, DNS: dns, Now: now, Sysctls: sysctls}
			rep := Analyze(in)
			got := ids(rep)
			want := slices.Clone(c.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("findings %v, want %v\n%s", got, want, dump(rep))
			}
			if (len(c.want) == 0 || allInfo(c.want)) != (rep.ExitCode() == 0) {
				t.Errorf("exit code %d for %v", rep.ExitCode(), c.want)
			}
			if os.Getenv("UPDATE_FIXTURES") != "" && c.snap.OS != "darwin" { // darwin ones come from routes' parser
				b, _ := json.MarshalIndent(c.snap, "", " ")
				os.WriteFile(filepath.Join("testdata", c.name+".json"), b, 0o644)
			}
			// Every fix deletes only what its finding names as evidence.
			for _, f := range rep.Findings {
				for _, ch := range f.Fix {
					if !evidenced(f, ch) {
						t.Errorf("%s: fix %s touches something not in its evidence", f.ID, ch)
					}
				}
			}
		})
	}
}

func allInfo(ws []string) bool {
	for _, w := range ws {
		if !strings.HasSuffix(w, ":info") {
			return false
		}
	}
	return true
}

func evidenced(f Finding, ch routes.Change) bool {
	for _, e := range f.Evidence {
		if ch.Link != nil && e.Kind == "link" && strings.HasPrefix(e.Text, ch.Link.Name+":") {
			return true
		}
		// A re-pin adds the host route via the default route it shows.
		if ch.Op == routes.OpAddRoute && e.Route != nil && e.Route.Dst.Bits() == 0 && e.Route.Gateway == ch.Route.Gateway && e.Route.Device == ch.Route.Device {
			return true
		}
		if e.Route != nil && ch.Route != nil && e.Route.String() == ch.Route.String() {
			return true
		}
		if e.Rule != nil && ch.Rule != nil && e.Rule.String() == ch.Rule.String() {
			return true
		}
	}
	return false
}

func dump(rep Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		fmt.Fprintf(&b, "  %s [%s] %s\n", f.ID, f.Severity, f.Title)
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "     %s\n", e.Text)
		}
	}
	return b.String()
}

// After a Tunnelblick force-quit, once its utun is gone, XNU has taken
// the utun's routes (if_rtdel) and what is left is OpenVPN's host route to
// its server via en0 (and the DNS servers it set, configd's business, not
// the routing table's): doctor names that route, and its fix deletes it
// and nothing else.
func TestTunnelblickFixIsExactAndMacOSCommands(t *testing.T) {
	rep := Analyze(Input{Snapshot: macFixture(t, "darwin-tunnelblick-force-quit"), Now: now})
	if len(rep.Findings) != 1 || rep.Findings[0].ID != "stale-endpoint-route" {
		t.Fatalf("want only the stale endpoint route:\n%s", dump(rep))
	}
	stale := rep.Findings[0]
	if len(stale.Fix) != 1 || stale.Fix[0].Op != routes.OpDelRoute || stale.Fix[0].Route.String() != "198.51.100.1/32 via 192.168.1.1 dev en0" {
		t.Fatalf("fix %v, want the deletion of 198.51.100.1/32 via 192.168.1.1 dev en0", stale.Fix)
	}
	if !strings.Contains(stale.Title, "198.51.100.1") || !slices.Contains(stale.Commands, "sudo route -n delete -inet 198.51.100.1 192.168.1.1") {
		t.Errorf("title %q, commands %q", stale.Title, stale.Commands)
	}
}

// The moment before, the utun still there but down: its def1 halves,
// configd's scoped IPv6 default, its link-local prefix and the lo0 route
// whose gateway it is are dead, and their fixes touch no en0 route.
func TestTunnelblickUtunDownFixIsExact(t *testing.T) {
	snap := macFixture(t, "darwin-tunnelblick-utun-down")
	want := []string{
		"sudo route -n delete -inet 0.0.0.0/1 10.8.0.1",
		"sudo route -n delete -inet 128.0.0.0/1 10.8.0.1",
		"sudo route -n delete -inet6 default fe80::%utun3 -ifscope utun3",
	}
	checkDead(t, snap, "utun3", want)
	// A dump naming an interface index that no longer exists (netstat's
	// link#N: XNU's if_rtdel should not leave one, but doctor must not
	// offer route(8) a name it cannot take if one appears): the fixes go
	// by index, the commands are shown commented out.
	b, _ := json.Marshal(snap)
	var gone routes.Snapshot
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(b), "utun3", "link#15")), &gone); err != nil {
		t.Fatal(err)
	}
	gone.Links = slices.DeleteFunc(gone.Links, func(l routes.Link) bool { return l.Name == "link#15" })
	checkDead(t, &gone, "link#15", []string{
		"sudo route -n delete -inet 0.0.0.0/1 10.8.0.1",
		// route(8) cannot name a vanished interface, and without -ifscope
		// it would delete the unscoped default of en0: not offered to type.
		"# sudo route -n delete -inet6 default fe80::%link#15 -ifscope link#15  (interface gone: route(8) cannot name it, vpn doctor --fix can)",
		"# sudo route -n delete -inet6 fe80::a4b1:c2d3:e4f5:1%link#15 -interface lo0 -ifscope link#15  (interface gone: route(8) cannot name it, vpn doctor --fix can)",
	})
}

func checkDead(t *testing.T, snap *routes.Snapshot, dev string, commands []string) {
	t.Helper()
	rep := Analyze(Input{Snapshot: snap, Now: now})
	var dead Finding
	for _, f := range rep.Findings {
		if f.ID == "dead-device-route" {
			dead = f
		}
	}
	if len(dead.Fix) != 5 || !strings.Contains(dead.Title, dev) {
		t.Fatalf("%s: want its 5 routes removed, got %q: %v", dev, dead.Title, dead.Commands)
	}
	for _, w := range commands {
		if !slices.Contains(dead.Commands, w) {
			t.Errorf("%s: commands %q lack %q", dev, dead.Commands, w)
		}
	}
	for _, ch := range dead.Fix {
		if ch.Route.Device == "en0" || gatewayDevice(*ch.Route) == "en0" {
			t.Errorf("%s: a healthy en0 route would be deleted: %s", dev, ch)
		}
	}
}

func TestSelectHonoursRules(t *testing.T) {
	s := withTunnel(linuxLaptop(), "10.0.0.0/8")
	cases := []struct {
		f    Flow
		want string
	}{
		{Flow{Dst: a("10.10.1.1")}, "cp0"},                   // tunnel
		{Flow{Dst: a("10.1.2.77")}, "eth0"},                  // LAN /24 beats pushed /8 (throw)
		{Flow{Dst: a("10.10.1.1"), FwMark: 0x7411}, "eth0"},  // WireGuard's own packets skip the tunnel
		{Flow{Dst: a("10.10.1.1"), Src: a("10.1.2.10")}, ""}, // replies from the LAN address use main: no 10/8 there, default
	}
	for _, c := range cases {
		d := Select(s, c.f)
		want := c.want
		if want == "" {
			want = "eth0"
		}
		if d.Route.Device != want {
			t.Errorf("%+v -> %s, want %s", c.f, display(d.Route), want)
		}
	}
}

func FuzzAnalyze(f *testing.F) {
	seed, _ := json.Marshal(macFixture(f, "darwin-tunnelblick-utun-down"))
	f.Add(seed)
	seed2, _ := json.Marshal(withWgQuickCrash(withOurLeftovers(linuxLaptop())))
	f.Add(seed2)
	f.Fuzz(func(t *testing.T, data []byte) {
		var s routes.Snapshot
		if json.Unmarshal(data, &s) != nil {
			return
		}
		rep := Analyze(Input{Snapshot: &s, Agent: agent("10.0.0.0/8", "::/0"), DNS: []netip.Addr{a("10.8.0.1")}, Now: now})
		for _, f := range rep.Findings {
			if f.ID == "" || f.Severity == "" || f.Title == "" {
				t.Fatalf("incomplete finding %+v", f)
			}
		}
	})
}

func BenchmarkAnalyze10k(b *testing.B) {
	s := withTunnel(linuxLaptop(), "10.0.0.0/8")
	for i := range 10000 {
		s.Routes = append(s.Routes, r4(254, fmt.Sprintf("172.%d.%d.0/24", 16+i/256%16, i%256), "10.1.2.1", "eth0", 4))
	}
	ag := agent("10.0.0.0/8")
	b.ResetTimer()
	for b.Loop() {
		Analyze(Input{Snapshot: s, Agent: ag, Now: now})
	}
}

// A LAN device whose name looks like a tunnel's (as in the lab, cp1a2bhost)
// is judged by its link type: no "another VPN" note for a veth; a real
// tun device carrying the default route gets one.
func TestTunnelsAreKnownByLinkType(t *testing.T) {
	rename := func(s *routes.Snapshot, from, to, typ string) *routes.Snapshot {
		for i := range s.Links {
			if s.Links[i].Name == from {
				s.Links[i].Name, s.Links[i].Type = to, typ
			}
		}
		for i := range s.Routes {
			if s.Routes[i].Device == from {
				s.Routes[i].Device = to
			}
		}
		for i := range s.Addresses {
			if s.Addresses[i].Device == from {
				s.Addresses[i].Device = to
			}
		}
		return s
	}
	veth := rename(linuxLaptop(), "eth0", "cp1a2bhost", "veth")
	if got := ids(Analyze(Input{Snapshot: veth, Now: now})); len(got) != 0 {
		t.Errorf("a veth named cp1a2bhost: findings %v, want none", got)
	}
	tun := rename(linuxLaptop(), "eth0", "office0", "tuntap")
	got := ids(Analyze(Input{Snapshot: tun, Now: now}))
	if !slices.Contains(got, "default-hijack:info") {
		t.Errorf("the default route through a tun device: findings %v, want default-hijack:info", got)
	}
}

// An address on our tunnel that the gateway did not assign, or a network
// instead of a host (128.0.0.2/1 would put a kernel route beating the LAN's
// default into main): doctor names it with the address and its route.
func TestTunnelAddressNotAssigned(t *testing.T) {
	healthy := withTunnel(linuxLaptop(), "10.20.0.0/16")
	if got := ids(Analyze(Input{Snapshot: healthy, Agent: agent("10.20.0.0/16"), Now: now})); slices.Contains(got, "tunnel-address:error") || slices.Contains(got, "tunnel-address:warning") {
		t.Fatalf("the assigned /32 alone: %v", got)
	}
	for _, tc := range []struct {
		addr, sev, cmd string
		route          bool
	}{
		{"128.0.0.2/1", Error, "sudo ip address del 128.0.0.2/1 dev cp0", true},
		{"fd00:64::2/0", Error, "sudo ip address del fd00:64::2/0 dev cp0", true},
		{"100.64.0.9/32", Warning, "sudo ip address del 100.64.0.9/32 dev cp0", false},
		{"1.1.1.1/32", Warning, "sudo ip address del 1.1.1.1/32 dev cp0", false},
	} {
		s := withTunnel(linuxLaptop(), "10.20.0.0/16")
		a := p(tc.addr)
		s.Addresses = append(s.Addresses, routes.Address{Device: "cp0", Prefix: a})
		if !a.IsSingleIP() { // what the kernel adds for an address without noprefixroute
			s.Routes = append(s.Routes, r4(254, a.Masked().String(), "", "cp0", 2))
		}
		rep := Analyze(Input{Snapshot: s, Agent: agent("10.20.0.0/16"), Now: now})
		var f *Finding
		for i := range rep.Findings {
			if rep.Findings[i].ID == "tunnel-address" {
				f = &rep.Findings[i]
			}
		}
		if f == nil {
			t.Errorf("%s on cp0: findings %v, want tunnel-address", tc.addr, ids(rep))
			continue
		}
		if f.Severity != tc.sev || f.Evidence[0].Text != tc.addr+" dev cp0" || len(f.Commands) != 1 || f.Commands[0] != tc.cmd {
			t.Errorf("%s: %+v", tc.addr, *f)
		}
		if got := len(f.Evidence) == 2 && f.Evidence[1].Route != nil; got != tc.route {
			t.Errorf("%s: kernel route in evidence %v, want %v: %+v", tc.addr, got, tc.route, f.Evidence)
		}
		if rep.Summary.Healthy {
			t.Errorf("%s: report healthy", tc.addr)
		}
	}
}
