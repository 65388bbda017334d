package routes

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
)

const utun5 = 21

// macWithTunnel is the healthy Mac with ClearPath's utun5 just created.
func macWithTunnel() *xnu {
	ifs, addrs := macInterfaces(false)
	k := newXNU(ifs, addrs, macHealthyDump())
	k.attach(utun5, "utun5", pfx("100.64.0.2/32"))
	return k
}

// ourMacRoutes is what ClearPath adds on macOS for a full tunnel: the /1
// halves into the utun, the endpoint pinned to the LAN gateway, IPv6
// refused in halves (the tunnel has no IPv6).
func ourMacRoutes() []Change {
	var out []Change
	for _, r := range []Route{
		mkRoute("0.0.0.0/1", "", "utun5"),
		mkRoute("128.0.0.0/1", "", "utun5"),
		mkRoute("198.51.100.1/32", "192.168.1.1", "en0"),
		{Type: TypeUnreachable, Dst: pfx("::/1")},
		{Type: TypeUnreachable, Dst: pfx("8000::/1")},
	} {
		out = append(out, Change{Op: OpAddRoute, Route: ptr(ours(r))})
	}
	return out
}

func lookup(t *testing.T, s System, dst string) Route {
	t.Helper()
	r, err := s.Lookup(Query{Dst: netip.MustParseAddr(dst)})
	if err != nil {
		t.Fatalf("lookup %s: %v", dst, err)
	}
	return r
}

func TestBSDSystemOursCarryProto1AndReplaysAreIdempotent(t *testing.T) {
	k := macWithTunnel()
	sys := newBSDSystem(k)
	before, err := sys.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ourMacRoutes() {
		if err := sys.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := sys.Snapshot()
	owned, rules := OwnedItems(snap)
	var got []string
	for _, r := range owned {
		got = append(got, r.String()+" "+strings.Join(r.Flags, ""))
	}
	want := []string{
		"0.0.0.0/1 dev utun5 proto 197 US1",
		"128.0.0.0/1 dev utun5 proto 197 US1",
		"198.51.100.1/32 via 192.168.1.1 dev en0 proto 197 UGHS1",
		"unreachable ::/1 proto 197 UGRS1",
		"unreachable 8000::/1 proto 197 UGRS1",
	}
	if !slices.Equal(got, want) || len(rules) != 0 {
		t.Fatalf("owned routes in the kernel:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The kernel now routes as a full tunnel does.
	for dst, dev := range map[string]string{"10.10.1.1": "utun5", "203.0.113.9": "utun5", "198.51.100.1": "en0", "192.168.1.50": "en0"} {
		if r := lookup(t, sys, dst); r.Device != dev {
			t.Errorf("%s goes via %s, want %s", dst, r, dev)
		}
	}
	if r := lookup(t, sys, "2001:db8:ffff::200"); r.Type != TypeUnreachable {
		t.Errorf("IPv6 leaks past the tunnel: %s", r)
	}
	if r := lookup(t, sys, "198.51.100.1"); r.Gateway != netip.MustParseAddr("192.168.1.1") || r.Dst != pfx("198.51.100.1/32") {
		t.Errorf("endpoint lookup %s", r)
	}
	// Replays (a journal undone twice, an add repeated) change nothing.
	n := len(k.table)
	for _, c := range ourMacRoutes() {
		if err := sys.Apply(c); err != nil {
			t.Fatalf("replayed add: %v", err)
		}
	}
	if len(k.table) != n {
		t.Fatalf("replayed adds grew the table from %d to %d", n, len(k.table))
	}
	for _, c := range ourMacRoutes() {
		if err := sys.Apply(Inverse(c)); err != nil {
			t.Fatal(err)
		}
	}
	deletes := len(k.sent(rtmDelete))
	for _, c := range ourMacRoutes() {
		if err := sys.Apply(Inverse(c)); err != nil {
			t.Fatalf("replayed delete: %v", err)
		}
	}
	if len(k.sent(rtmDelete)) != deletes {
		t.Errorf("deleting what is gone sent %d more RTM_DELETE", len(k.sent(rtmDelete))-deletes)
	}
	after, _ := sys.Snapshot()
	if d := Compare(before, after); !d.Empty() {
		t.Fatalf("table not back: added %v removed %v", d.AddedRoutes, d.RemovedRoutes)
	}
}

// XNU deletes by key alone. When another program has put its own route
// under the key of ours, undoing ours must leave it alone.
func TestBSDSystemDeleteNeverHitsAnotherRouteUnderTheSameKey(t *testing.T) {
	k := macWithTunnel()
	sys := newBSDSystem(k)
	mine := ours(mkRoute("10.0.0.0/8", "", "utun5"))
	if err := sys.Apply(Change{Op: OpAddRoute, Route: &mine}); err != nil {
		t.Fatal(err)
	}
	// Another VPN replaces it: same destination and mask, its gateway, no RTF_PROTO1.
	theirs := dump(macEn0, "UGS", in4("10.0.0.0"), in4("192.168.1.254"), kmask(8, false))
	k.table = slices.DeleteFunc(k.table, func(e bsdRouteMsg) bool { return mustKey(e) == mustKey(theirs) })
	k.table = append(k.table, theirs)

	deletes := len(k.sent(rtmDelete))
	if err := sys.Apply(Change{Op: OpDelRoute, Route: &mine}); err != nil {
		t.Fatal(err)
	}
	if len(k.sent(rtmDelete)) != deletes {
		t.Fatalf("an RTM_DELETE went out for a route that is not ours")
	}
	if r := lookup(t, sys, "10.1.1.1"); r.Gateway != netip.MustParseAddr("192.168.1.254") {
		t.Fatalf("the other program's route is gone: 10.1.1.1 via %s", r)
	}
	// Adding ours again names what is in the way instead of replacing it.
	err := sys.Apply(Change{Op: OpAddRoute, Route: &mine})
	if err == nil || !strings.Contains(err.Error(), "a different route is in its place: 10.0.0.0/8 via 192.168.1.254 dev en0") {
		t.Fatalf("add over another's route: %v", err)
	}
	// A delete naming a protocol or table macOS has not is refused.
	for _, bad := range []Route{{Dst: pfx("10.0.0.0/8"), Protocol: 4}, {Dst: pfx("10.0.0.0/8"), Table: 254}} {
		if err := sys.Apply(Change{Op: OpDelRoute, Route: &bad}); err == nil {
			t.Errorf("delete %s accepted", bad)
		}
	}
}

// The scoped IPv6 default a utun leaves and the machine's own unscoped
// default share destination and mask; only the scope tells them apart.
func TestBSDSystemScopedDefaultIsSelectedByScope(t *testing.T) {
	ifs, addrs := macInterfaces(true)
	k := newXNU(ifs, addrs, append(macHealthyDump(), tunnelblickLeftovers()...))
	sys := newBSDSystem(k)
	snap, _ := sys.Snapshot()
	i := slices.IndexFunc(snap.Routes, func(r Route) bool { return r.Dst == pfx("::/0") && Scoped(r) })
	if i < 0 || snap.Routes[i].Device != "utun3" {
		t.Fatalf("no scoped default on utun3 in %v", snap.Routes)
	}
	if err := sys.Apply(Change{Op: OpDelRoute, Route: &snap.Routes[i]}); err != nil {
		t.Fatal(err)
	}
	del := k.sent(rtmDelete)
	if len(del) != 1 || del[0].Flags&rtfIfScope == 0 || del[0].Index != macUtun {
		t.Fatalf("RTM_DELETE %+v: want RTF_IFSCOPE with index %d", del, macUtun)
	}
	after, _ := sys.Snapshot()
	d := Compare(snap, after)
	if len(d.RemovedRoutes) != 1 || len(d.AddedRoutes) != 0 || !Scoped(d.RemovedRoutes[0]) {
		t.Fatalf("removed %v, added %v", d.RemovedRoutes, d.AddedRoutes)
	}
	if r := lookup(t, sys, "2001:db8:ffff::200"); r.Device != "en0" {
		t.Fatalf("IPv6 default now %s", r)
	}
}

func TestBSDSystemRefusesWhatMacOSLacks(t *testing.T) {
	sys := newBSDSystem(macWithTunnel())
	rule := Rule{Family: FamilyV4, Priority: PriorityTunnelRule, Table: Table, Protocol: Protocol}
	if err := sys.Apply(Change{Op: OpAddRule, Rule: &rule}); err == nil || !strings.Contains(err.Error(), "no policy rules") {
		t.Errorf("rule: %v", err)
	}
	if _, err := sys.Lookup(Query{Dst: netip.MustParseAddr("10.0.0.1"), FwMark: FwMark}); err == nil {
		t.Errorf("lookup with fwmark accepted")
	}
	r := ours(mkRoute("10.0.0.0/8", "", "utun9"))
	if err := sys.Apply(Change{Op: OpAddRoute, Route: &r}); err == nil || !strings.Contains(err.Error(), "device utun9") {
		t.Errorf("missing device: %v", err)
	}
	k := newXNU(nil, nil, nil)
	if _, err := newBSDSystem(k).Lookup(Query{Dst: netip.MustParseAddr("10.0.0.1")}); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Errorf("empty table: %v", err)
	}
}

// The engine on macOS: a session journals every change, and after a crash
// (kill -9: no End, and the utun goes with the process) the next start
// restores the table exactly, endpoint pin included.
func TestBSDEngineRestoresAfterCrash(t *testing.T) {
	for _, crash := range []bool{false, true} {
		k := macWithTunnel()
		sys := newBSDSystem(k)
		before, _ := sys.Snapshot()
		dir := t.TempDir()
		e := NewEngine(sys, dir)
		if err := e.Begin(); err != nil {
			t.Fatal(err)
		}
		if err := e.Apply(ourMacRoutes()...); err != nil {
			t.Fatal(err)
		}
		var rep *Report
		var err error
		if crash {
			k.detach(utun5) // the process is gone, and its utun with it
			rep, err = NewEngine(sys, dir).Recover()
		} else {
			rep, err = e.End()
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 0 {
			t.Errorf("crash=%v: problems %v", crash, rep.Problems)
		}
		after, _ := sys.Snapshot()
		if crash {
			before.Routes = slices.DeleteFunc(before.Routes, func(r Route) bool { return r.Device == "utun5" })
		}
		if d := Compare(before, after); !d.Empty() {
			t.Errorf("crash=%v: table not restored: added %v removed %v", crash, d.AddedRoutes, d.RemovedRoutes)
		}
		if owned, _ := OwnedItems(after); len(owned) != 0 {
			t.Errorf("crash=%v: ours remain: %v", crash, owned)
		}
		if NewEngine(sys, dir).Active() {
			t.Errorf("crash=%v: journal left behind", crash)
		}
	}
}

// A kernel refusal reaches the caller as the errno, wrapped with the route.
func TestBSDSystemKernelErrorsAreWrapped(t *testing.T) {
	k := macWithTunnel()
	sys := newBSDSystem(k)
	r := ours(mkRoute("10.0.0.0/8", "203.0.113.1", "")) // no route to that gateway's network
	k.table = slices.DeleteFunc(k.table, func(e bsdRouteMsg) bool { return true })
	err := sys.Apply(Change{Op: OpAddRoute, Route: &r})
	if err == nil || !strings.Contains(err.Error(), "add route 10.0.0.0/8 via 203.0.113.1 proto 197") || !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("err %v", err)
	}
}
