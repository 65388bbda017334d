package routes_test

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/routestest"
)

// Only intents are fsynced (done records and snapshot.json are not): what a
// power loss can take is the done records and the snapshot. A journal of
// intents alone and a torn snapshot still recover exactly, and the torn
// snapshot is a problem report, not a failure that keeps the journal.
func TestRecoverWithoutDoneRecordsOrSnapshot(t *testing.T) {
	sys := routestest.New(nil)
	sys.AddLink(routes.Link{Name: "cp0", Up: true})
	before, _ := sys.Snapshot()
	dir := t.TempDir()
	e := routes.NewEngine(sys, dir)
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	desired := []routes.Change{
		{Op: routes.OpAddRoute, Route: &routes.Route{Table: routes.Table, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.10.0.0/16"), Device: "cp0", Protocol: routes.Protocol}},
		{Op: routes.OpAddRoute, Route: &routes.Route{Table: routes.Table, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.20.0.0/16"), Device: "cp0", Protocol: routes.Protocol}},
		{Op: routes.OpAddRule, Rule: &routes.Rule{Family: routes.FamilyV4, Priority: 4200, Table: routes.Table, Protocol: routes.Protocol, SuppressPrefixLen: -1}},
	}
	if _, _, err := e.Reconcile(desired); err != nil {
		t.Fatal(err)
	}
	// The kernel state stays (a process crash), the unsynced writes go.
	jp := filepath.Join(dir, "journal")
	j, err := os.ReadFile(jp)
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	for _, line := range bytes.SplitAfter(j, []byte("\n")) {
		if len(line) > 0 && !bytes.Contains(line, []byte(`"phase":"done"`)) {
			kept = append(kept, line)
		}
	}
	if len(kept) != len(desired) {
		t.Fatalf("journal holds %d intents, want %d:\n%s", len(kept), len(desired), j)
	}
	if err := os.WriteFile(jp, bytes.Join(kept, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snapshot.json"), []byte("{\"snapsh"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := routes.NewEngine(sys, dir).Recover()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Undone) != len(desired) {
		t.Errorf("undone %d changes, want %d: %+v", len(rep.Undone), len(desired), rep)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "snapshot unreadable") {
		t.Errorf("problems %q, want the unreadable snapshot only", rep.Problems)
	}
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() {
		t.Errorf("routing state differs after recovery: %+v", d)
	}
	for _, f := range []string{"journal", "snapshot.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after recovery (%v)", f, err)
		}
	}
}
