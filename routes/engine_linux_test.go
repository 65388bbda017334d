package routes

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

var tunnelPrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.10.0.0/16"), netip.MustParsePrefix("100.64.0.1/32"),
	netip.MustParsePrefix("fd10:10::/64"), netip.MustParsePrefix("fd00:64::1/128"),
}

// foreign installs what other programs own: they must survive everything.
func foreign(t *testing.T, ns string) {
	ipIn(t, ns, "route", "add", "10.200.0.0/16", "dev", "peer0", "table", "52")
	ipIn(t, ns, "rule", "add", "priority", "5270", "lookup", "52")
	ipIn(t, ns, "-6", "route", "add", "2001:db8:5::/48", "via", "fd01:2::1", "dev", "lan0")
	ipIn(t, ns, "route", "add", "203.0.113.9/32", "via", "10.1.2.1", "dev", "lan0")
}

func TestSessionRestoresExactly(t *testing.T) {
	sys, ns := testNS(t)
	foreign(t, ns)
	dir := t.TempDir()
	before, _ := sys.Snapshot()
	e := NewEngine(sys, dir)
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(TunnelChanges("peer0", tunnelPrefixes)...); err != nil {
		t.Fatal(err)
	}
	during := ipIn(t, ns, "route", "show", "table", "7411")
	if !strings.Contains(during, "10.10.0.0/16 dev peer0 proto 197") {
		t.Fatalf("tunnel route missing:\n%s", during)
	}
	if r, err := sys.Lookup(Query{Dst: netip.MustParseAddr("10.10.3.4")}); err != nil || r.Device != "peer0" {
		t.Fatalf("10.10.3.4 routes via %v (%v), want the tunnel", r, err)
	}
	if r, _ := sys.Lookup(Query{Dst: netip.MustParseAddr("10.10.3.4"), FwMark: FwMark}); r.Device != "lan0" {
		t.Fatalf("marked packets (the WireGuard socket) must skip the tunnel, got %v", r)
	}
	rep, err := e.End()
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("end: %v %v", rep, err)
	}
	after, _ := sys.Snapshot()
	if d := Compare(before, after); !d.Empty() {
		t.Fatalf("table differs after down: %+v", d)
	}
	if e.Active() {
		t.Fatal("journal left behind")
	}
}

// TestCrashAtEveryPoint kills a process applying the tunnel's changes at
// every point (after each intent record, after each change, after each
// done record) and checks that recovery restores the snapshot exactly,
// leaving foreign routes alone.
func TestCrashAtEveryPoint(t *testing.T) {
	sys, ns := testNS(t)
	foreign(t, ns)
	before, _ := sys.Snapshot()
	n := len(TunnelChanges("peer0", tunnelPrefixes))
	for k := 0; k < n; k++ {
		for _, point := range []string{"intent", "apply", "done"} {
			t.Run(fmt.Sprintf("%s-%d", point, k), func(t *testing.T) {
				dir := t.TempDir()
				cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestCrashHelper$")
				cmd.Env = append(os.Environ(), "CP_CRASH_DIR="+dir, "CP_CRASH_AT="+strconv.Itoa(k), "CP_CRASH_POINT="+point)
				out, err := cmd.CombinedOutput()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					t.Fatalf("helper was not killed (%v):\n%s", err, out)
				}
				if (point != "intent" || k > 0) && !strings.Contains(ipIn(t, ns, "route", "show", "table", "all"), "proto 197") &&
					!strings.Contains(ipIn(t, ns, "rule"), "proto 197") {
					t.Fatal("the crash left nothing of ours: the test does not test anything")
				}
				e := NewEngine(sys, dir)
				if !e.Active() {
					t.Fatal("no journal after the crash")
				}
				if _, err := e.Recover(); err != nil {
					t.Fatal(err)
				}
				after, _ := sys.Snapshot()
				if d := Compare(before, after); !d.Empty() {
					t.Fatalf("after recovery the table differs: %+v", d)
				}
			})
		}
	}
}

// TestCrashHelper runs inside the test namespace as a child of
// TestCrashAtEveryPoint and kills itself at the requested point.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("CP_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	at, _ := strconv.Atoi(os.Getenv("CP_CRASH_AT"))
	point := os.Getenv("CP_CRASH_POINT")
	sys, err := NewSystem()
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(sys, dir)
	i := 0
	die := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL); select {} }
	e.afterIntent = func(Change) {
		if point == "intent" && i == at {
			die()
		}
	}
	e.afterApply = func(Change) {
		if point == "apply" && i == at {
			die()
		}
		i++
	}
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	changes := TunnelChanges("peer0", tunnelPrefixes)
	for j, c := range changes {
		if err := e.Apply(c); err != nil {
			t.Fatal(err)
		}
		if point == "done" && j == at {
			die()
		}
	}
	t.Fatal("not killed")
}

func TestRecoverSweepsStrayOwnedItems(t *testing.T) {
	sys, ns := testNS(t)
	foreign(t, ns)
	before, _ := sys.Snapshot()
	// Ours, but in no journal (e.g. the state dir was wiped).
	ipIn(t, ns, "route", "add", "10.9.0.0/16", "dev", "peer0", "table", "7411", "proto", "197")
	ipIn(t, ns, "rule", "add", "priority", "4200", "not", "fwmark", "0x7411", "lookup", "7411", "protocol", "197")
	rep, err := NewEngine(sys, t.TempDir()).Recover()
	if err != nil || len(rep.Swept) != 2 {
		t.Fatalf("swept %v (%v), want the stray route and rule", rep, err)
	}
	after, _ := sys.Snapshot()
	if d := Compare(before, after); !d.Empty() {
		t.Fatalf("table differs: %+v", d)
	}
}

func TestTornJournalIsRecovered(t *testing.T) {
	sys, ns := testNS(t)
	before, _ := sys.Snapshot()
	dir := t.TempDir()
	e := NewEngine(sys, dir)
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(TunnelChanges("peer0", tunnelPrefixes[:1])...); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(dir+"/journal", os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"v":1,"seq":9,"phase":"inte`) // power lost mid-write
	f.Close()
	if _, err := NewEngine(sys, dir).Recover(); err != nil {
		t.Fatalf("torn last record must be tolerated: %v", err)
	}
	after, _ := sys.Snapshot()
	if d := Compare(before, after); !d.Empty() {
		t.Fatalf("table differs: %+v (ns %s)", d, ns)
	}
}
