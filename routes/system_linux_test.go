package routes

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNS makes a fresh network namespace with a veth pair (lan0 <-> peer0,
// both inside it) carrying a LAN and a default route, and returns a System
// acting inside it. Everything is deleted when the test ends.
func testNS(t *testing.T) (System, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("cprt-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	ipx := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "netns", "del", name).Run()
	ipx("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipx("-n", name, "link", "set", "lo", "up")
	ipx("-n", name, "link", "add", "lan0", "type", "veth", "peer", "name", "peer0")
	ipx("-n", name, "link", "set", "lan0", "up")
	ipx("-n", name, "link", "set", "peer0", "up")
	ipx("-n", name, "addr", "add", "10.1.2.10/24", "dev", "lan0")
	ipx("-n", name, "addr", "add", "fd01:2::10/64", "dev", "lan0", "nodad")
	ipx("-n", name, "route", "add", "default", "via", "10.1.2.1", "dev", "lan0")
	ipx("-n", name, "-6", "route", "add", "default", "via", "fd01:2::1", "dev", "lan0")
	// The kernel adds the IPv6 addresses' local routes a moment later (the
	// link-local ones of lan0 and peer0 up to a second after the links come
	// up on a loaded machine); a snapshot taken before they land would see
	// them as a change.
	for i := 0; i < 500; i++ {
		out, _ := exec.Command("ip", "-n", name, "-6", "route", "show", "table", "local").CombinedOutput()
		if strings.Contains(string(out), "fd01:2::10") && strings.Count(string(out), "local fe80::") >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return NewSystemAt(nh), name
}

func ipIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestSnapshotMatchesIPCommand(t *testing.T) {
	sys, ns := testNS(t)
	ipIn(t, ns, "route", "add", "throw", "10.50.0.0/16", "table", "77")
	ipIn(t, ns, "route", "add", "blackhole", "default", "table", "77")
	ipIn(t, ns, "-6", "route", "add", "unreachable", "2001:db8::/32", "table", "77")
	ipIn(t, ns, "rule", "add", "priority", "300", "fwmark", "0x10", "lookup", "77")
	ipIn(t, ns, "rule", "add", "priority", "301", "lookup", "main", "suppress_prefixlength", "0")
	snap, err := sys.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"throw 10.50.0.0/16 table 77":                       false,
		"blackhole 0.0.0.0/0 table 77":                      false,
		"unreachable 2001:db8::/32 table 77":                false,
		"0.0.0.0/0 via 10.1.2.1 dev lan0 table main":        false,
		"10.1.2.0/24 dev lan0 table main":                   false,
		"300: from all fwmark 0x10 lookup 77":               false,
		"301: from all lookup main suppress_prefixlength 0": false,
	}
	var seen []string
	for _, r := range snap.Routes {
		s := r.String()
		seen = append(seen, s)
		for w := range want {
			if strings.HasPrefix(s, w) {
				want[w] = true
			}
		}
	}
	for _, r := range snap.Rules {
		s := r.String()
		seen = append(seen, s)
		if _, ok := want[s]; ok {
			want[s] = true
		}
	}
	for w, ok := range want {
		if !ok {
			t.Errorf("snapshot lacks %q; has:\n%s", w, strings.Join(seen, "\n"))
		}
	}
	if len(snap.Links) < 3 || len(snap.Addresses) < 2 {
		t.Errorf("links %v addresses %v", snap.Links, snap.Addresses)
	}
}

func TestDeleteIsExact(t *testing.T) {
	sys, ns := testNS(t)
	// Same destination in two tables and via two devices: deleting ours
	// must leave the others alone.
	ipIn(t, ns, "route", "add", "10.77.0.0/16", "dev", "peer0", "table", "88")
	ipIn(t, ns, "route", "add", "10.77.0.0/16", "dev", "lan0", "table", "main")
	ours := Route{Family: FamilyV4, Table: Table, Type: TypeUnicast, Dst: netip.MustParsePrefix("10.77.0.0/16"), Device: "lan0", Protocol: Protocol, Scope: 253}
	for range 2 { // the second add is a replay and must be fine
		if err := sys.Apply(Change{Op: OpAddRoute, Route: &ours}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sys.Apply(Change{Op: OpDelRoute, Route: &ours}); err != nil {
		t.Fatal(err)
	}
	if err := sys.Apply(Change{Op: OpDelRoute, Route: &ours}); err != nil {
		t.Fatalf("deleting what is gone must be fine: %v", err)
	}
	all := ipIn(t, ns, "route", "show", "table", "all")
	if !strings.Contains(all, "10.77.0.0/16 dev peer0 table 88") || !strings.Contains(all, "10.77.0.0/16 dev lan0 scope link") {
		t.Fatalf("a foreign route went away:\n%s", all)
	}
	if strings.Contains(all, "table 7411") {
		t.Fatalf("ours is still there:\n%s", all)
	}
	// A conflicting route (other device) in our table is an error, not a silent success.
	other := ours
	other.Device = "peer0"
	sys.Apply(Change{Op: OpAddRoute, Route: &ours})
	if err := sys.Apply(Change{Op: OpAddRoute, Route: &other}); err == nil {
		t.Error("adding a different route to the same destination must fail")
	}
}

func TestLookup(t *testing.T) {
	sys, _ := testNS(t)
	r, err := sys.Lookup(Query{Dst: netip.MustParseAddr("198.51.100.7")})
	if err != nil || r.Device != "lan0" || r.Gateway.String() != "10.1.2.1" {
		t.Fatalf("lookup = %v %v", r, err)
	}
}
