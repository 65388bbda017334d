package analysis

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
)

func wrule(prio, table int) routes.Rule {
	return routes.Rule{Family: routes.FamilyV4, Priority: prio, Table: table, Action: "lookup", SuppressPrefixLen: -1}
}

func wroute(table int, typ routes.RouteType, dst, dev string, metric int) routes.Route {
	p := netip.MustParsePrefix(dst)
	fam := routes.FamilyV4
	if p.Addr().Is6() {
		fam = routes.FamilyV6
	}
	return routes.Route{Family: fam, Table: table, Type: typ, Dst: p, Device: dev, Metric: metric}
}

// defaults are the kernel's three IPv4 rules.
func defaults() []routes.Rule {
	return []routes.Rule{wrule(0, 255), wrule(32766, 254), wrule(32767, 253)}
}

// wgQuickSnapshot is a laptop after `wg-quick up` with AllowedIPs 0.0.0.0/0:
// 32764 lookup main suppress_prefixlength 0, 32765 not fwmark 0xca6c lookup 51820.
func wgQuickSnapshot() *routes.Snapshot {
	main := wrule(32764, 254)
	main.SuppressPrefixLen = 0
	tun := wrule(32765, 51820)
	tun.FwMark, tun.FwMask, tun.Invert = 0xca6c, 0xffffffff, true
	return &routes.Snapshot{OS: "linux", Rules: append(defaults(), main, tun), Routes: []routes.Route{
		wroute(255, routes.TypeLocal, "192.168.1.10/32", "eth0", 0),
		wroute(254, routes.TypeUnicast, "0.0.0.0/0", "eth0", 100),
		wroute(254, routes.TypeUnicast, "192.168.1.0/24", "eth0", 100),
		wroute(51820, routes.TypeUnicast, "0.0.0.0/0", "wg0", 0),
	}}
}

func outcomes(d Decision) string {
	var out []string
	for _, s := range d.Steps {
		out = append(out, s.Outcome)
	}
	return strings.Join(out, " ")
}

func TestWalkSuppressPrefixLengthZero(t *testing.T) {
	s := wgQuickSnapshot()
	cases := []struct {
		f        Flow
		dev      string
		table    int
		outcomes string
	}{
		// main's default is suppressed (/0 <= 0), the tunnel table decides.
		{Flow{Dst: a("1.1.1.1")}, "wg0", 51820, "no-route suppressed decides"},
		// The LAN route is longer than /0: not suppressed.
		{Flow{Dst: a("192.168.1.7")}, "eth0", 254, "no-route decides"},
		// WireGuard's own packets carry the mark: main's default after all.
		{Flow{Dst: a("1.1.1.1"), FwMark: 0xca6c}, "eth0", 254, "no-route suppressed no-match decides"},
		// Forwarded packets too (the rules have no iif).
		{Flow{Dst: a("1.1.1.1"), Src: a("10.9.0.2"), IIF: "eth1"}, "wg0", 51820, "no-route suppressed decides"},
		// The host's own address: the local table first.
		{Flow{Dst: a("192.168.1.10")}, "eth0", 255, "decides"},
	}
	for _, c := range cases {
		d := Walk(s, c.f)
		if d.Refused || d.Route.Device != c.dev || d.Route.Table != c.table || outcomes(d) != c.outcomes || d.Rule == nil || d.Rule.Table != c.table {
			t.Errorf("%+v: %s %s, outcomes %q\n%s", c.f, d.Verdict(), d.Route, outcomes(d), stepLines(d))
		}
	}
	d := Walk(s, Flow{Dst: a("1.1.1.1")})
	if got := d.Steps[1].String(); got != "32764: from all lookup main suppress_prefixlength 0 -> 0.0.0.0/0 dev eth0 table main metric 100: suppressed (/0 <= suppress_prefixlength 0): on to the next rule" {
		t.Errorf("suppressed step reads %q", got)
	}
	if got := d.Steps[2].Why; got != "not: fwmark 0xca6c/0xffffffff, the packet has mark 0x0" {
		t.Errorf("not fwmark step: why %q", got)
	}
}

func stepLines(d Decision) string {
	var b strings.Builder
	for _, s := range d.Steps {
		b.WriteString("  " + s.String() + "\n")
	}
	return b.String()
}

func TestWalkRouteTypesAndActions(t *testing.T) {
	supp := wrule(100, 100)
	supp.SuppressPrefixLen = 0
	s := &routes.Snapshot{OS: "linux", Rules: append(defaults(), supp), Routes: []routes.Route{
		wroute(100, routes.TypeBlackhole, "0.0.0.0/0", "", 0),
		wroute(100, routes.TypeThrow, "10.0.0.0/8", "", 0),
		wroute(100, routes.TypeUnreachable, "10.1.0.0/16", "", 0),
		wroute(100, routes.TypeProhibit, "10.2.0.0/16", "", 0),
		wroute(100, routes.TypeUnicast, "10.3.0.0/16", "eth1", 0),
		wroute(254, routes.TypeUnicast, "10.0.0.0/8", "eth0", 0),
	}}
	cases := []struct{ dst, verdict, outcomes string }{
		// suppress_prefixlength does not apply to a blackhole: it decides.
		{"8.8.8.8", "blackhole", "no-route decides"},
		{"10.9.9.9", "unicast", "no-route throw decides"}, // throw: main's 10/8
		{"10.1.1.1", "unreachable", "no-route decides"},
		{"10.2.1.1", "prohibit", "no-route decides"},
		{"10.3.1.1", "unicast", "no-route decides"},
	}
	for _, c := range cases {
		d := Walk(s, Flow{Dst: a(c.dst)})
		if d.Verdict() != c.verdict || outcomes(d) != c.outcomes || d.Refused != refuses(d.Route.Type) {
			t.Errorf("%s: %s (refused %v), outcomes %q\n%s", c.dst, d.Verdict(), d.Refused, outcomes(d), stepLines(d))
		}
	}
	for _, act := range []string{"blackhole", "unreachable", "prohibit"} {
		r := wrule(50, 0)
		r.Action = act
		s := &routes.Snapshot{OS: "linux", Rules: append(defaults(), r), Routes: []routes.Route{wroute(254, routes.TypeUnicast, "0.0.0.0/0", "eth0", 0)}}
		d := Walk(s, Flow{Dst: a("8.8.8.8")})
		if d.Verdict() != "rule-"+act || !d.Refused || d.Rule == nil || d.Rule.Priority != 50 {
			t.Errorf("rule %s: %s\n%s", act, d.Verdict(), stepLines(d))
		}
	}
	// No rule leads anywhere.
	if d := Walk(&routes.Snapshot{OS: "linux", Rules: defaults()}, Flow{Dst: a("8.8.8.8")}); !d.NoRoute || !d.Refused || d.Verdict() != "no-route" || len(d.Steps) != 3 {
		t.Errorf("empty tables: %+v", d)
	}
}

func TestWalkGotoNop(t *testing.T) {
	gotoR := wrule(10, 0)
	gotoR.Action, gotoR.Goto = "goto", 30
	hole := wrule(20, 0)
	hole.Action = "blackhole"
	target := wrule(30, 100)
	nop := wrule(5, 0)
	nop.Action = "nop"
	s := &routes.Snapshot{OS: "linux", Rules: []routes.Rule{hole, target, gotoR, nop, wrule(32766, 254)}, Routes: []routes.Route{
		wroute(100, routes.TypeUnicast, "0.0.0.0/0", "tun0", 0), wroute(254, routes.TypeUnicast, "0.0.0.0/0", "eth0", 0),
	}}
	d := Walk(s, Flow{Dst: a("8.8.8.8")})
	if d.Route.Device != "tun0" || outcomes(d) != "nop goto decides" {
		t.Errorf("goto 30 over a blackhole: %s\n%s", d.Route, stepLines(d))
	}
	// The target must match in turn; if not, the walk goes on after it.
	s.Rules[1].To = netip.MustParsePrefix("10.0.0.0/8")
	d = Walk(s, Flow{Dst: a("8.8.8.8")})
	if d.Route.Device != "eth0" || outcomes(d) != "nop goto no-match decides" {
		t.Errorf("goto to a rule that does not match: %s\n%s", d.Route, stepLines(d))
	}
	// A goto to a missing priority, or backwards, goes on to the next rule.
	for _, to := range []int{31, 1} {
		s.Rules[2].Goto = to
		d = Walk(s, Flow{Dst: a("8.8.8.8")})
		if d.Verdict() != "rule-blackhole" || outcomes(d) != "nop goto-none decides" {
			t.Errorf("goto %d: %s\n%s", to, d.Verdict(), stepLines(d))
		}
	}
}

func TestWalkSelectors(t *testing.T) {
	mk := func(mod func(*routes.Rule)) *routes.Snapshot {
		r := wrule(10, 100)
		mod(&r)
		return &routes.Snapshot{OS: "linux", Rules: []routes.Rule{r, wrule(32766, 254)}, Routes: []routes.Route{
			wroute(100, routes.TypeUnicast, "0.0.0.0/0", "tun0", 0), wroute(254, routes.TypeUnicast, "0.0.0.0/0", "eth0", 0),
			wroute(100, routes.TypeUnicast, "::/0", "tun0", 0), wroute(254, routes.TypeUnicast, "::/0", "eth0", 0),
		}}
	}
	v6 := func(r *routes.Rule) { r.Family = routes.FamilyV6 }
	cases := []struct {
		name string
		mod  func(*routes.Rule)
		f    Flow
		hit  bool
	}{
		{"iif lo matches what the host sends", func(r *routes.Rule) { r.IIF = "lo" }, Flow{Dst: a("8.8.8.8")}, true},
		{"iif lo does not match forwarded", func(r *routes.Rule) { r.IIF = "lo" }, Flow{Dst: a("8.8.8.8"), Src: a("10.0.0.2"), IIF: "eth1"}, false},
		{"iif eth1", func(r *routes.Rule) { r.IIF = "eth1" }, Flow{Dst: a("8.8.8.8"), Src: a("10.0.0.2"), IIF: "eth1"}, true},
		{"oif without a bound flow", func(r *routes.Rule) { r.OIF = "tun0" }, Flow{Dst: a("8.8.8.8")}, false},
		{"oif bound", func(r *routes.Rule) { r.OIF = "tun0" }, Flow{Dst: a("8.8.8.8"), OIF: "tun0"}, true},
		{"fwmark/mask", func(r *routes.Rule) { r.FwMark, r.FwMask = 0x1, 0xff }, Flow{Dst: a("8.8.8.8"), FwMark: 0x301}, true},
		{"fwmark/mask other", func(r *routes.Rule) { r.FwMark, r.FwMask = 0x1, 0xff }, Flow{Dst: a("8.8.8.8"), FwMark: 0x302}, false},
		{"fwmark without mask", func(r *routes.Rule) { r.FwMark = 0x1 }, Flow{Dst: a("8.8.8.8"), FwMark: 0x101}, false},
		{"to", func(r *routes.Rule) { r.To = netip.MustParsePrefix("8.8.0.0/16") }, Flow{Dst: a("8.8.8.8")}, true},
		{"not to", func(r *routes.Rule) { r.To, r.Invert = netip.MustParsePrefix("8.8.0.0/16"), true }, Flow{Dst: a("8.8.8.8")}, false},
		{"from", func(r *routes.Rule) { r.From = netip.MustParsePrefix("10.0.0.0/8") }, Flow{Dst: a("8.8.8.8"), Src: a("10.1.1.1")}, true},
		{"from, IPv4 flow without source is 0.0.0.0", func(r *routes.Rule) { r.From = netip.MustParsePrefix("0.0.0.0/8") }, Flow{Dst: a("8.8.8.8")}, true},
		{"from, other IPv4", func(r *routes.Rule) { r.From = netip.MustParsePrefix("10.0.0.0/8") }, Flow{Dst: a("8.8.8.8")}, false},
		{"from, IPv6 flow without source", func(r *routes.Rule) { v6(r); r.From = netip.MustParsePrefix("::/1") }, Flow{Dst: a("2001:db8::1")}, false},
		{"from, IPv6 with source", func(r *routes.Rule) { v6(r); r.From = netip.MustParsePrefix("::/1") }, Flow{Dst: a("2001:db8::1"), Src: a("2001:db8::2")}, true},
		{"other family", v6, Flow{Dst: a("8.8.8.8")}, false},
		{"both families", func(r *routes.Rule) { r.Family = routes.FamilyAll }, Flow{Dst: a("2001:db8::1")}, true},
	}
	for _, c := range cases {
		d := Walk(mk(c.mod), c.f)
		if (d.Route.Device == "tun0") != c.hit {
			t.Errorf("%s: %s\n%s", c.name, d.Route, stepLines(d))
		}
	}
}

func TestWalkLookupOrder(t *testing.T) {
	// Equal priorities keep the snapshot's (kernel's) order; equal
	// prefixes go to the lowest metric.
	first, second := wrule(10, 100), wrule(10, 101)
	s := &routes.Snapshot{OS: "linux", Rules: []routes.Rule{first, second}, Routes: []routes.Route{
		wroute(100, routes.TypeUnicast, "10.0.0.0/8", "a", 20), wroute(100, routes.TypeUnicast, "10.0.0.0/8", "b", 10),
		wroute(100, routes.TypeUnicast, "10.1.0.0/16", "c", 30), wroute(101, routes.TypeUnicast, "0.0.0.0/0", "d", 0),
		wroute(100, routes.TypeBroadcast, "10.255.255.255/32", "a", 0),
	}}
	for dst, dev := range map[string]string{"10.2.2.2": "b", "10.1.1.1": "c", "8.8.8.8": "d", "10.255.255.255": "a"} {
		if d := Walk(s, Flow{Dst: a(dst)}); d.Route.Device != dev {
			t.Errorf("%s -> %s, want %s\n%s", dst, d.Route, dev, stepLines(d))
		}
	}
	if d := Walk(s, Flow{Dst: a("10.255.255.255")}); d.Verdict() != "broadcast" || d.Refused {
		t.Errorf("broadcast: %s refused %v", d.Verdict(), d.Refused)
	}
	// Select is the walk.
	if Select(s, Flow{Dst: a("10.2.2.2")}).Route.Device != "b" {
		t.Error("Select differs from Walk")
	}
}

// FuzzWalk builds a snapshot from bytes and checks the walk's invariants:
// no panic, each rule considered at most once (gotos go forward), the
// deciding step is the last and names Decision.Rule, the route contains the
// destination and comes from the rule's table.
func FuzzWalk(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"), uint32(0x08080808), uint32(0))
	f.Add([]byte(strings.Repeat("\xff\x7f\x01\x80", 40)), uint32(0x0a010203), uint32(0xca6c))
	f.Fuzz(func(t *testing.T, data []byte, dst32, mark uint32) {
		s := fuzzSnapshot(data)
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], dst32)
		flows := []Flow{
			{Dst: netip.AddrFrom4(b), FwMark: mark},
			{Dst: netip.AddrFrom4(b), Src: netip.AddrFrom4([4]byte{10, b[1], b[2], 1}), IIF: []string{"eth0", "tun0", "lo", ""}[mark%4], FwMark: mark},
			{Dst: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, b[0], b[1], b[2], b[3]}), FwMark: mark},
		}
		for _, fl := range flows {
			d := Walk(s, fl)
			seen := map[int]bool{}
			for i, st := range d.Steps {
				key := -1
				for j, r := range s.Rules {
					if routes.SameRule(r, st.Rule) && !seen[j] {
						key = j
						break
					}
				}
				if key < 0 {
					t.Fatalf("step %d: rule %s considered twice or not in the snapshot", i, st.Rule)
				}
				seen[key] = true
				if st.Outcome == StepDecides && i != len(d.Steps)-1 {
					t.Fatalf("a decision before the last step: %s", stepLines(d))
				}
				if st.Route != nil && (!st.Route.Dst.Contains(fl.Dst) || st.Route.Table != st.Rule.Table) {
					t.Fatalf("step %d looked up %s for %s in table %d", i, st.Route, fl.Dst, st.Rule.Table)
				}
				if st.String() == "" {
					t.Fatal("empty step text")
				}
			}
			switch {
			case d.NoRoute:
				if !d.Refused || d.Rule != nil || d.Route.Dst.IsValid() {
					t.Fatalf("no route but %+v", d)
				}
			default:
				last := d.Steps[len(d.Steps)-1]
				if last.Outcome != StepDecides || d.Rule == nil || !routes.SameRule(*d.Rule, last.Rule) {
					t.Fatalf("decision %+v does not match the last step %+v", d, last)
				}
				if d.Route.Dst.IsValid() && (!d.Route.Dst.Contains(fl.Dst) || d.Refused != refuses(d.Route.Type)) {
					t.Fatalf("route %s for %s, refused %v", d.Route, fl.Dst, d.Refused)
				}
				if !d.Route.Dst.IsValid() && !d.Refused {
					t.Fatalf("a rule action decided but not refused: %+v", d)
				}
			}
		}
	})
}

// fuzzSnapshot reads rules and routes from data, 8 bytes each, alternating.
func fuzzSnapshot(data []byte) *routes.Snapshot {
	s := &routes.Snapshot{OS: "linux"}
	actions := []string{"lookup", "lookup", "lookup", "lookup", "goto", "nop", "blackhole", "unreachable", "prohibit", "weird"}
	types := []routes.RouteType{routes.TypeUnicast, routes.TypeUnicast, routes.TypeThrow, routes.TypeBlackhole, routes.TypeUnreachable, routes.TypeProhibit, routes.TypeLocal, routes.TypeBroadcast, routes.TypeOther}
	tables := []int{100, 101, 254, 255, 253}
	devs := []string{"eth0", "tun0", "lo", ""}
	for i := 0; i+8 <= len(data) && i < 8*64; i += 8 {
		c := data[i : i+8]
		pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{c[2] & 0x0f, c[3], c[4], 0}), int(c[5]%33)).Masked()
		if c[7]&1 == 1 {
			pfx = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, c[2], c[3], c[4]}), int(c[5])%129).Masked()
		}
		if (i/8)%2 == 0 {
			r := routes.Rule{Priority: int(c[0]) * 10, Table: tables[int(c[1])%len(tables)], Action: actions[int(c[6])%len(actions)], SuppressPrefixLen: int(c[6]>>4) - 2,
				Invert: c[7]&2 != 0, Goto: int(c[3]) * 10, Family: routes.FamilyV4}
			if pfx.Addr().Is6() {
				r.Family = routes.FamilyV6
			}
			switch c[7] >> 5 {
			case 1:
				r.To = pfx
			case 2:
				r.From = pfx
			case 3:
				r.IIF = devs[int(c[4])%len(devs)]
			case 4:
				r.FwMark, r.FwMask = uint32(c[4]), uint32(c[5])
			case 5:
				r.OIF = devs[int(c[4])%len(devs)]
			}
			s.Rules = append(s.Rules, r)
		} else {
			s.Routes = append(s.Routes, routes.Route{Table: tables[int(c[1])%len(tables)], Type: types[int(c[6])%len(types)], Dst: pfx,
				Device: devs[int(c[0])%len(devs)], Metric: int(c[0] >> 4)})
		}
	}
	return s
}

// vpn doctor's JSON does not change with the fields the gateway added.
func TestClientReportJSONStable(t *testing.T) {
	rep := Analyze(Input{Snapshot: withWgQuickCrash(withOurLeftovers(linuxLaptop())), Now: now})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{`"network"`, `"cloud"`, `"passed"`, `"severity":"ok"`} {
		if strings.Contains(string(b), gone) {
			t.Errorf("vpn doctor's JSON gained %s:\n%s", gone, b)
		}
	}
	if len(rep.Findings) == 0 || rep.Schema != Schema {
		t.Errorf("fixture gives no findings: %+v", rep)
	}
}
