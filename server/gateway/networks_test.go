package gateway

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/routestest"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/netpolicy"
)

// host is an in-memory gateway host: lo, eth0 with a default route, the
// devices of the example's networks, forwarding off, and what other
// programs own: a route in table 1000 (the first network's) is NOT there
// (start would refuse it), but a rule and a route in table 52 are.
func host(t *testing.T) *routestest.System {
	t.Helper()
	sys := routestest.New(nil)
	sys.AddLink(routes.Link{Name: "eth0", Up: true})
	sys.AddLink(routes.Link{Name: "wg-eng", Up: true})
	sys.AddLink(routes.Link{Name: "wg-ops", Up: true})
	for _, c := range []routes.Change{
		{Op: routes.OpAddRoute, Route: &routes.Route{Family: routes.FamilyV4, Table: 254, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.0.2.1"), Device: "eth0", Protocol: 4}},
		{Op: routes.OpAddRoute, Route: &routes.Route{Family: routes.FamilyV4, Table: 52, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.200.0.0/16"), Device: "eth0", Protocol: 4}},
		{Op: routes.OpAddRule, Rule: &routes.Rule{Family: routes.FamilyV4, Priority: 5270, Table: 52, SuppressPrefixLen: -1}},
	} {
		if err := sys.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	sys.SetSysctl("net/ipv4/ip_forward", "0")
	sys.SetSysctl("net/ipv6/conf/all/forwarding", "0")
	sys.Applied = nil
	return sys
}

func exampleConfig(t *testing.T, edit ...string) *config.Config {
	t.Helper()
	doc := config.Example
	for i := 0; i+1 < len(edit); i += 2 {
		if !strings.Contains(doc, edit[i]) {
			t.Fatalf("edit %q not in the example", edit[i])
		}
		doc = strings.Replace(doc, edit[i], edit[i+1], 1)
	}
	return mustParse(t, doc)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startNet runs the network steps of a start that touch routing (the
// devices exist already in the fake host).
func startNet(t *testing.T, sys *routestest.System, dir string, nets []config.Network) *hostNet {
	t.Helper()
	h := newHostNet(sys, dir, quiet())
	if err := h.checkTables(nets); err != nil {
		t.Fatal(err)
	}
	if err := h.begin(); err != nil {
		t.Fatal(err)
	}
	if err := h.enableForwarding(); err != nil {
		t.Fatal(err)
	}
	if err := h.reconcile(nets); err != nil {
		t.Fatal(err)
	}
	return h
}

func owned(t *testing.T, sys *routestest.System) []string {
	t.Helper()
	snap, _ := sys.Snapshot()
	rs, rules := routes.GatewayOwner.Items(snap)
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	for _, r := range rules {
		out = append(out, r.String())
	}
	for _, a := range snap.Addresses {
		out = append(out, a.Device+" "+a.Prefix.String())
	}
	slices.Sort(out)
	return out
}

func TestNetworksStartAndStop(t *testing.T) {
	sys := host(t)
	before, _ := sys.Snapshot()
	cfg := exampleConfig(t)
	h := startNet(t, sys, t.TempDir(), cfg.Networks)
	got := owned(t, sys)
	if len(got) != 16 {
		t.Fatalf("after start %d items of the gateway, want 16 (2 networks x (4 routes + 2 rules + 2 addresses)):\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, w := range []string{"throw 10.10.0.0/16 table 1000 proto 198", "blackhole ::/0 table 1001 proto 198", "wg-eng 100.64.0.1/24", "wg-ops fd00:65::1/64"} {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	if sys.Sysctl("net/ipv4/ip_forward") != "1" || sys.Sysctl("net/ipv6/conf/all/forwarding") != "1" {
		t.Error("forwarding not on")
	}
	h.end()
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() {
		t.Fatalf("stop left a difference: %+v", d)
	}
	if len(after.Addresses) != 0 || sys.Sysctl("net/ipv4/ip_forward") != "0" || sys.Sysctl("net/ipv6/conf/all/forwarding") != "0" {
		t.Fatalf("stop left addresses %v or forwarding on", after.Addresses)
	}
}

// Forwarding already on (a container sets it; /proc/sys is read-only there)
// is not written, and so not written back at stop.
func TestForwardingAlreadyOnIsLeftAlone(t *testing.T) {
	sys := host(t)
	sys.SetSysctl("net/ipv4/ip_forward", "1")
	h := startNet(t, sys, t.TempDir(), exampleConfig(t).Networks)
	h.end()
	var writes []string
	for _, c := range sys.Applied {
		if c.Sysctl != nil {
			writes = append(writes, c.String())
		}
	}
	if len(writes) != 2 || !strings.Contains(writes[0], "ipv6") || !strings.Contains(writes[1], "ipv6") {
		t.Fatalf("sysctl writes %q, want only the IPv6 switch on and back", writes)
	}
	if sys.Sysctl("net/ipv4/ip_forward") != "1" {
		t.Fatal("ip_forward changed")
	}
}

// kill -9: the next start's recovery removes exactly what the killed one
// left and finds the original switch values, so the clean stop after it
// turns forwarding back off (on main the next start recorded 1 as the
// original).
func TestRestartAfterKillRestoresForwarding(t *testing.T) {
	sys := host(t)
	before, _ := sys.Snapshot()
	dir := t.TempDir()
	cfg := exampleConfig(t)
	startNet(t, sys, dir, cfg.Networks) // killed: no end
	h := startNet(t, sys, dir, cfg.Networks)
	if got := owned(t, sys); len(got) != 16 {
		t.Fatalf("after restart %d items, want 16 (nothing doubled)", len(got))
	}
	h.end()
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() {
		t.Fatalf("differs: %+v", d)
	}
	if sys.Sysctl("net/ipv4/ip_forward") != "0" {
		t.Fatal("ip_forward left on after kill -9, restart and stop")
	}
}

// A route another program put in a network's table refuses the start,
// naming the table and the route, before anything changed; one in another
// table is no concern.
func TestForeignRouteInTableRefused(t *testing.T) {
	sys := host(t)
	foreign := routes.Route{Family: routes.FamilyV4, Table: 1000, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.99.0.0/16"), Device: "eth0", Protocol: 4}
	sys.Apply(routes.Change{Op: routes.OpAddRoute, Route: &foreign})
	sys.Applied = nil
	h := newHostNet(sys, t.TempDir(), quiet())
	err := h.checkTables(exampleConfig(t).Networks)
	var fe *netpolicy.ForeignError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "table 1000") || !strings.Contains(err.Error(), "10.99.0.0/16 dev eth0 table 1000") {
		t.Fatalf("error %v, want one naming table 1000 and its route", err)
	}
	if len(sys.Applied) != 0 {
		t.Fatalf("changes made: %v", sys.Applied)
	}
	if err := h.checkTables(exampleConfig(t, "    # table: 1000        # policy routing table (default 1000 + position)\n", "    table: 1010\n").Networks); err != nil {
		t.Fatalf("table 1010 is free: %v", err)
	}
}

// Reloads are one reconcile each: only the difference is made, additions
// before removals, and nothing outside protocol 198 is touched.
func TestReloadDiffs(t *testing.T) {
	cases := []struct {
		name        string
		edit        []string
		add, remove []string // changes, in order of application (prefix match)
	}{
		{"allow change", []string{`allow: [10.10.0.0/16, "fd10:10::/64"]`, `allow: [10.10.0.0/16, 10.11.0.0/16]`},
			[]string{"ip route add throw 10.11.0.0/16 table 1000"}, []string{"ip -6 route del throw fd10:10::/64 table 1000"}},
		{"table move", []string{"    allow: [10.20.0.0/16, \"fd10:20::/64\"]\n", "    allow: [10.20.0.0/16, \"fd10:20::/64\"]\n    table: 1010\n"},
			[]string{"ip route add throw 10.20.0.0/16 table 1010", "ip -6 route add throw fd10:20::/64 table 1010", "ip route add blackhole 0.0.0.0/0 table 1010", "ip -6 route add blackhole ::/0 table 1010", "ip rule add priority 1000 from all iif wg-ops lookup 1010", "ip -6 rule add priority 1000 from all iif wg-ops lookup 1010"},
			[]string{"ip route del throw 10.20.0.0/16 table 1001", "ip -6 route del throw fd10:20::/64 table 1001", "ip route del blackhole 0.0.0.0/0 table 1001", "ip -6 route del blackhole ::/0 table 1001", "ip rule del priority 1000 from all iif wg-ops lookup 1001", "ip -6 rule del priority 1000 from all iif wg-ops lookup 1001"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sys := host(t)
			cur := exampleConfig(t)
			h := startNet(t, sys, t.TempDir(), cur.Networks)
			sys.Applied = nil
			next := exampleConfig(t, c.edit...)
			if err := h.reconcile(next.Networks); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ch := range sys.Applied {
				got = append(got, ch.String())
			}
			want := append(slices.Clone(c.add), c.remove...)
			if len(got) != len(want) {
				t.Fatalf("applied:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for i := range want {
				if !strings.HasPrefix(got[i], want[i]) {
					t.Errorf("change %d: %q, want %q...", i, got[i], want[i])
				}
			}
			h.end()
		})
	}
	// Removing a network from the list removes its policy, once its device
	// is gone, and keeps the other's.
	sys := host(t)
	cur := exampleConfig(t)
	h := startNet(t, sys, t.TempDir(), cur.Networks)
	sys.RemoveLink("wg-ops")
	if err := h.reconcile(cur.Networks[:1]); err != nil {
		t.Fatal(err)
	}
	for _, s := range owned(t, sys) {
		if strings.Contains(s, "1001") || strings.Contains(s, "wg-ops") {
			t.Errorf("left of the removed network: %s", s)
		}
	}
	if len(owned(t, sys)) != 8 {
		t.Errorf("eng's policy changed: %v", owned(t, sys))
	}
	h.end()
}

// A reconcile that fails half way (the kernel refuses a rule) is rolled
// back by reconciling to the running networks: the policy is as before
// and the foreign items untouched.
func TestReloadFailureRollsBack(t *testing.T) {
	sys := host(t)
	cur := exampleConfig(t)
	h := startNet(t, sys, t.TempDir(), cur.Networks)
	running := owned(t, sys)
	snapBefore, _ := sys.Snapshot()
	next := exampleConfig(t, "    allow: [10.20.0.0/16, \"fd10:20::/64\"]\n", "    allow: [10.20.0.0/16, \"fd10:20::/64\"]\n    table: 1010\n")
	sys.Fail = func(c routes.Change) error {
		if c.Op == routes.OpAddRule && c.Rule.Table == 1010 && c.Rule.Family == routes.FamilyV6 {
			return errors.New("rule table full")
		}
		return nil
	}
	if err := h.reconcile(next.Networks); err == nil || !strings.Contains(err.Error(), "rule table full") {
		t.Fatalf("reconcile: %v", err)
	}
	sys.Fail = nil
	if err := h.reconcile(cur.Networks); err != nil {
		t.Fatal(err)
	}
	if got := owned(t, sys); !slices.Equal(got, running) {
		t.Fatalf("after rollback:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(running, "\n"))
	}
	snapAfter, _ := sys.Snapshot()
	if d := routes.Compare(snapBefore, snapAfter); !d.Empty() {
		t.Fatalf("differs: %+v", d)
	}
	h.end()
}

// A start that fails at step k undoes steps k-1..1, newest first, each once;
// a clean stop is the same unwind.
func TestStepsUndoExactlyTheEarlierOnes(t *testing.T) {
	var trace []string
	s := newSteps(quiet(), func(p string) { trace = append(trace, p) })
	var undone []string
	for _, name := range []string{"lock", "session", "forwarding", "guard"} {
		var undo func()
		if name != "forwarding" {
			undo = func() { undone = append(undone, name) }
		}
		s.did(name, undo)
	}
	if got := s.pending(); !slices.Equal(got, []string{"guard", "session", "lock"}) {
		t.Fatalf("pending %v", got)
	}
	s.unwind()
	s.unwind() // idempotent
	if !slices.Equal(undone, []string{"guard", "session", "lock"}) {
		t.Fatalf("undone %v", undone)
	}
	want := []string{"start:lock", "start:session", "start:forwarding", "start:guard", "undo:guard", "undo:session", "undo:lock"}
	if !slices.Equal(trace, want) {
		t.Fatalf("trace %v, want %v", trace, want)
	}
}

// A start failing in the middle of the network steps (the policy refused
// by the kernel) leaves the fake host exactly as before: forwarding off,
// no rule, route or address, the foreign items in place.
func TestFailedStartLeavesNothing(t *testing.T) {
	sys := host(t)
	before, _ := sys.Snapshot()
	sys.Fail = func(c routes.Change) error {
		if c.Route != nil && c.Route.Table == 1001 && c.Route.Type == routes.TypeBlackhole {
			return errors.New("no memory")
		}
		return nil
	}
	s := newSteps(quiet(), nil)
	h := newHostNet(sys, t.TempDir(), quiet())
	err := func() error {
		if err := h.begin(); err != nil {
			return err
		}
		s.did("route session", h.end)
		if err := h.enableForwarding(); err != nil {
			return err
		}
		return h.reconcile(exampleConfig(t).Networks)
	}()
	if err == nil || !strings.Contains(err.Error(), "no memory") {
		t.Fatalf("start: %v", err)
	}
	s.unwind()
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() || len(after.Addresses) != 0 || sys.Sysctl("net/ipv4/ip_forward") != "0" {
		t.Fatalf("left behind: %+v addresses %v forwarding %s", d, after.Addresses, sys.Sysctl("net/ipv4/ip_forward"))
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
