package routes

import (
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// Rule actions survive the snapshot: netlink v1.3.1's RuleList reads every
// blackhole, unreachable, prohibit and nop rule as "lookup 0".
func TestSnapshotReadsRuleActions(t *testing.T) {
	bare, name := testNS(t)
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sys, err := NewSystemIn(h)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.(io.Closer).Close()
	for _, r := range [][]string{
		{"rule", "add", "pref", "100", "from", "10.9.0.0/16", "blackhole"},
		{"rule", "add", "pref", "101", "to", "10.8.0.0/16", "unreachable"},
		{"rule", "add", "pref", "102", "iif", "lan0", "prohibit"},
		{"rule", "add", "pref", "103", "fwmark", "0x1/0xff", "nop"},
		{"rule", "add", "pref", "104", "not", "oif", "lan0", "goto", "200"},
		{"rule", "add", "pref", "200", "lookup", "main", "suppress_prefixlength", "0"},
		{"-6", "rule", "add", "pref", "100", "from", "fd09::/16", "prohibit"},
	} {
		ipIn(t, name, r...)
	}
	snap, err := sys.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range snap.Rules {
		if r.Priority >= 100 && r.Priority <= 200 {
			got = append(got, r.String())
		}
	}
	want := []string{
		"100: from 10.9.0.0/16 blackhole",
		"101: from all to 10.8.0.0/16 unreachable",
		"102: from all iif lan0 prohibit",
		"103: from all fwmark 0x1/0xff nop",
		"104: not from all oif lan0 goto 200",
		"200: from all lookup main suppress_prefixlength 0",
		"-6 100: from fd09::/16 prohibit",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules read back:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Through a bare handle the action is unknown, not a lookup of table 0.
	old, err := bare.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range old.Rules {
		if r.Priority == 100 && r.Action != "action-unknown" || r.Priority == 104 && (r.Action != "goto" || r.Goto != 200) {
			t.Errorf("through NewSystemAt: %s (action %q)", r, r.Action)
		}
	}
	// Deleting a blackhole rule finds it (it was "not there" before).
	hole := Rule{Family: FamilyV4, Priority: 100, From: netip.MustParsePrefix("10.9.0.0/16"), Action: "blackhole", SuppressPrefixLen: -1}
	if err := sys.Apply(Change{Op: OpDelRule, Rule: &hole}); err != nil {
		t.Fatal(err)
	}
	if out := ipIn(t, name, "rule", "show", "pref", "100"); strings.Contains(out, "blackhole") {
		t.Errorf("blackhole rule still there after its deletion:\n%s", out)
	}
}
