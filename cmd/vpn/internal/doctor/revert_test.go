package doctor

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// A link is dead when down, without carrier, or a tun nobody holds; an
// unknown or live link is not (its claim is never reverted).
func TestDeadLink(t *testing.T) {
	snap := &routes.Snapshot{Links: []routes.Link{
		{Index: 2, Name: "eth0", Up: true},
		{Index: 7, Name: "tun0", Up: true, NoCarrier: true, Tun: &routes.TunInfo{Persistent: true}},
		{Index: 8, Name: "tun1", Up: true, Tun: &routes.TunInfo{Attached: 1}},
		{Index: 9, Name: "vpn9"},
		{Index: 10, Name: "veth0", Up: true, NoCarrier: true},
	}}
	for idx, want := range map[int]string{0: "", 2: "", 7: "a tun no process holds", 8: "", 9: "down", 10: "no carrier", 42: ""} {
		if got := deadLink(snap, idx); got != want {
			t.Errorf("link %d: %q, want %q", idx, got, want)
		}
	}
}

// --fix dns-domain-conflict reverts exactly the dead links Diagnose found
// (named only: bare --fix leaves another's settings alone); a failure
// names the link.
func TestFixConflictRevertsDeadLinksOnly(t *testing.T) {
	in := splitdns.DoctorInput{Domains: []string{"corp.internal"}, Servers: []string{"10.10.0.10"}, Claims: []splitdns.DomainClaim{
		{Source: "systemd-resolved link tun0 (ifindex 7)", Domain: "corp.internal", Index: 7, Dead: "a tun no process holds"},
		{Source: "systemd-resolved link tun1 (ifindex 8)", Domain: "corp.internal", Index: 8},
	}}
	rep := analysis.Report{Findings: splitdns.Diagnose(in)}
	o := &Options{revert: splitdns.FixableClaims(in)}
	var reverted []int
	e := &Env{ResolvConf: "/run/test/resolv.conf", RevertLink: func(path string, idx int) error {
		if path != "/run/test/resolv.conf" {
			t.Errorf("revert asked about %s", path)
		}
		reverted = append(reverted, idx)
		return nil
	}}
	var out bytes.Buffer
	if n, err := fixDNS(&out, e, rep, o, map[string]bool{}); n != 0 || err != nil || len(reverted) != 0 {
		t.Fatalf("bare --fix: %d %v, reverted %v (not ours: must be named)", n, err, reverted)
	}
	n, err := fixDNS(&out, e, rep, o, map[string]bool{splitdns.FindingConflict: true})
	if n != 1 || err != nil || len(reverted) != 1 || reverted[0] != 7 || !strings.Contains(out.String(), "reverted the DNS settings of systemd-resolved link tun0") {
		t.Fatalf("--fix %s: %d %v, reverted %v\n%s", splitdns.FindingConflict, n, err, reverted, out.String())
	}
	e.RevertLink = func(string, int) error { return errors.New("access denied") }
	if _, err := fixDNS(&out, e, rep, o, map[string]bool{splitdns.FindingConflict: true}); err == nil || !strings.Contains(err.Error(), "tun0") {
		t.Fatalf("failed revert: %v, want an error naming tun0", err)
	}
}
