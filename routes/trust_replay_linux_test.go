package routes

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A journal naming routes and rules that are not ClearPath's (no protocol
// 197, not table 7411), as a forged or corrupted journal would: recovery
// reports each and skips it; the foreign items survive, ours are undone.
func TestReplaySkipsForeignRecords(t *testing.T) {
	sys, ns := testNS(t)
	foreign(t, ns)
	dir := t.TempDir()
	gw := netip.MustParseAddr("10.1.2.1")
	forged := []Change{
		// Inverse del-route: would delete the foreign host route.
		{Op: OpAddRoute, Route: &Route{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: netip.MustParsePrefix("203.0.113.9/32"), Gateway: gw, Device: "lan0", Protocol: 3}},
		// Inverse del-route of Tailscale's table 52 route.
		{Op: OpAddRoute, Route: &Route{Family: FamilyV4, Table: 52, Type: TypeUnicast, Dst: netip.MustParsePrefix("10.200.0.0/16"), Device: "peer0", Protocol: 3}},
		// Inverse del-rule of Tailscale's rule.
		{Op: OpAddRule, Rule: &Rule{Family: FamilyV4, Priority: 5270, Table: 52, SuppressPrefixLen: -1, Action: "lookup"}},
		// Inverse add-route: would add a default route of someone else's.
		{Op: OpDelRoute, Route: &Route{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: netip.MustParsePrefix("198.18.0.0/15"), Gateway: gw, Device: "lan0", Protocol: 4}},
	}
	// And one record of ours, which must still be undone.
	ours := Change{Op: OpAddRoute, Route: &Route{Family: FamilyV4, Table: Table, Type: TypeUnicast, Dst: netip.MustParsePrefix("10.10.0.0/16"), Device: "peer0", Protocol: Protocol}}
	if err := sys.Apply(ours); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i, c := range append(forged, ours) {
		b, _ := json.Marshal(Record{V: JournalVersion, Seq: i + 1, Phase: "intent", Change: &c, Time: time.Now()})
		lines = append(lines, string(b))
	}
	os.WriteFile(filepath.Join(dir, "journal"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)

	rep, err := NewEngine(sys, dir).Recover()
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, p := range rep.Problems {
		if strings.Contains(p, "skipped journal record") && strings.Contains(p, "not ClearPath's") {
			skipped++
		}
	}
	if skipped != len(forged) {
		t.Errorf("%d of %d foreign records reported as skipped: %q", skipped, len(forged), rep.Problems)
	}
	if len(rep.Undone) != 1 || rep.Undone[0].Route == nil || rep.Undone[0].Route.Table != Table {
		t.Errorf("undone %v, want only our route", rep.Undone)
	}
	after := ipIn(t, ns, "route", "show", "table", "all") + ipIn(t, ns, "rule", "show")
	for _, want := range []string{"203.0.113.9 via 10.1.2.1 dev lan0", "10.200.0.0/16 dev peer0 table 52", "5270:\tfrom all lookup 52"} {
		if !strings.Contains(after, want) {
			t.Errorf("foreign %q did not survive the replay:\n%s", want, after)
		}
	}
	if strings.Contains(after, "198.18.0.0/15") || strings.Contains(after, "10.10.0.0/16") {
		t.Errorf("replay added a foreign route or left ours:\n%s", after)
	}
	if _, err := os.Stat(filepath.Join(dir, "journal")); err == nil {
		t.Error("the journal was kept: skipped records are not failures to retry")
	}
}

// A torn last line is cut before the next append; the journal stays
// readable and a session can begin, apply and end on it.
func TestTornTailIsCutBeforeAppend(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal")
	c := Change{Op: OpAddRoute, Route: &Route{Family: FamilyV4, Table: Table, Dst: netip.MustParsePrefix("10.10.0.0/16"), Device: "cp0", Protocol: Protocol}}
	b, _ := json.Marshal(Record{V: JournalVersion, Seq: 1, Phase: "intent", Change: &c, Time: time.Now()})
	os.WriteFile(path, append(append(b, '\n'), `{"v":1,"seq":2,"phase":"inte`...), 0o600)
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := j.Intent(c)
	if err != nil || seq != 2 {
		t.Fatalf("intent after a torn tail: seq %d, %v", seq, err)
	}
	j.Done(seq)
	j.Close()
	recs, err := ReadJournal(path)
	if err != nil {
		t.Fatalf("journal unreadable after appending to a torn tail: %v", err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (intent 1, intent 2, done 2)", len(recs))
	}
}

// A torn journal kept by a failed restore (an undo the kernel refused):
// the next session still begins and ends (before the fix every `vpn up`
// failed on the damaged middle line).
func TestTornJournalThenSessionWorks(t *testing.T) {
	sys, _ := testNS(t)
	dir := t.TempDir()
	// An intent whose undo fails (deleting a route of ours that is not
	// there does not fail, so use a rule the kernel refuses to add back).
	bad := Change{Op: OpDelRoute, Route: &Route{Family: FamilyV4, Table: Table, Type: TypeUnicast, Dst: netip.MustParsePrefix("10.99.0.0/16"), Gateway: netip.MustParseAddr("192.0.2.99"), Device: "lan0", Protocol: Protocol}}
	b, _ := json.Marshal(Record{V: JournalVersion, Seq: 1, Phase: "intent", Change: &bad, Time: time.Now()})
	os.WriteFile(filepath.Join(dir, "journal"), append(append(b, '\n'), `{"v":1,"seq":2,"ph`...), 0o600)
	e := NewEngine(sys, dir)
	if err := e.Begin(); err != nil {
		t.Fatalf("begin on a torn journal: %v", err)
	}
	if err := e.Apply(TunnelChanges("peer0", tunnelPrefixes[:1])...); err != nil {
		t.Fatalf("apply after a torn journal: %v", err)
	}
	if _, err := ReadJournal(filepath.Join(dir, "journal")); err != nil {
		t.Fatalf("journal damaged by the append: %v", err)
	}
	if _, err := e.End(); err != nil {
		t.Fatalf("end: %v", err)
	}
}
