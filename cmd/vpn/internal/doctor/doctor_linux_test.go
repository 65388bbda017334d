package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

func env(ns *netnstest.NS) *Env {
	return &Env{
		System: func() (routes.System, error) { return routes.NewSystemAt(ns.Handle), nil },
		Agent: func(context.Context) (*control.Status, error) {
			return nil, control.ErrNoAgent
		},
		Sysctl: func(string) string { return "0" },
		DNS:    func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("10.1.2.1")} },
		Now:    time.Now,
	}
}

func run(t *testing.T, e *Env, o *Options) (analysis.Report, int) {
	t.Helper()
	var out bytes.Buffer
	o.JSON = true
	err := Run(context.Background(), &out, e, o)
	code := 0
	var ee *cmdutil.ExitError
	if errors.As(err, &ee) {
		code = ee.Code
	} else if err != nil {
		t.Fatal(err)
	}
	// --fix prints its actions before the JSON report.
	s := out.String()
	var rep analysis.Report
	if err := json.Unmarshal([]byte(s[strings.Index(s, "{"):]), &rep); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, s)
	}
	return rep, code
}

func ids(rep analysis.Report) string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.ID)
	}
	return strings.Join(out, ",")
}

// A machine broken on purpose: our own leftovers after a kill -9, what a
// crashed wg-quick leaves, and a healthy foreign route that must survive.
func TestDoctorLive(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	if rep, code := run(t, e, &Options{}); code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("healthy namespace: exit %d, findings %s", code, ids(rep))
	}
	ns.IPIn("route", "add", "throw", "10.1.2.0/24", "table", "7411", "proto", "197")
	ns.IPIn("rule", "add", "priority", "4200", "not", "fwmark", "0x7411", "lookup", "7411", "protocol", "197")
	ns.IPIn("rule", "add", "priority", "32765", "not", "fwmark", "0xca6c", "lookup", "51820")
	ns.IPIn("rule", "add", "priority", "32764", "lookup", "main", "suppress_prefixlength", "0")
	ns.IPIn("route", "add", "10.200.0.0/16", "dev", "peer0", "table", "52")
	ns.IPIn("rule", "add", "priority", "5270", "lookup", "52")

	rep, code := run(t, e, &Options{})
	if code != 1 || ids(rep) != "leftover-owned,orphan-rule" {
		t.Fatalf("broken namespace: exit %d, findings %s", code, ids(rep))
	}
	// Bare --fix removes only ours.
	rep, _ = run(t, e, &Options{Fix: "ours"})
	if ids(rep) != "orphan-rule" {
		t.Fatalf("after --fix: %s", ids(rep))
	}
	if strings.Contains(ns.IPIn("rule"), "proto 197") || strings.Contains(ns.IPIn("route", "show", "table", "all"), "proto 197") {
		t.Fatal("our leftovers survived --fix")
	}
	if !strings.Contains(ns.IPIn("rule"), "lookup 51820") {
		t.Fatal("--fix without naming orphan-rule must not touch wg-quick's rules")
	}
	// --dry-run changes nothing; naming the finding fixes it.
	run(t, e, &Options{Fix: "orphan-rule", DryRun: true})
	if !strings.Contains(ns.IPIn("rule"), "lookup 51820") {
		t.Fatal("--dry-run changed something")
	}
	rep, code = run(t, e, &Options{Fix: "orphan-rule"})
	if code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("after --fix orphan-rule: exit %d, %s", code, ids(rep))
	}
	rules := ns.IPIn("rule")
	if strings.Contains(rules, "51820") || strings.Contains(rules, "suppress_prefixlength") {
		t.Fatalf("wg-quick's rules survived:\n%s", rules)
	}
	if !strings.Contains(rules, "5270:\tfrom all lookup 52") || !strings.Contains(ns.IPIn("route", "show", "table", "52"), "10.200.0.0/16") {
		t.Fatal("a healthy foreign rule or route was touched")
	}
}

// A kill switch left behind: a blackhole default ahead of the real one
// (which a VPN demoted to metric 100). Doctor names it; --fix
// default-hijack removes the blackhole only, the real default takes over
// and the next doctor is clean.
func TestDoctorBlackholedDefault(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	ns.IPIn("route", "del", "default")
	ns.IPIn("route", "add", "default", "via", "10.1.2.1", "dev", "lan0", "metric", "100")
	ns.IPIn("route", "add", "blackhole", "default")
	rep, code := run(t, e, &Options{})
	if code != 1 || ids(rep) != "default-hijack" {
		t.Fatalf("exit %d findings %s", code, ids(rep))
	}
	run(t, e, &Options{Fix: "default-hijack"})
	if strings.Contains(ns.IPIn("route"), "blackhole") {
		t.Fatal("blackhole default not removed")
	}
	if got := ns.IPIn("route", "get", "192.0.2.200"); !strings.Contains(got, "via 10.1.2.1 dev lan0") {
		t.Fatalf("the real default does not carry the internet after the fix: %s", got)
	}
	if rep, code := run(t, e, &Options{}); code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("after --fix: exit %d, findings %s", code, ids(rep))
	}
}

// A resolver left by a VPN whose route leads nowhere: 9.9.9.9 via a blackhole.
func TestDoctorDeadDNS(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	ns.IPIn("route", "add", "blackhole", "9.9.9.9/32")
	e.DNS = func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("9.9.9.9")} }
	rep, code := run(t, e, &Options{})
	if code != 1 || ids(rep) != "dns-unroutable" {
		t.Fatalf("exit %d findings %s", code, ids(rep))
	}
	e.DNS = func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("10.1.2.1")} }
	if rep, code := run(t, e, &Options{}); code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("with a reachable resolver: exit %d, findings %s", code, ids(rep))
	}
}

// A typo in --fix is an error (exit 2) that names the findings there are
// now, and nothing is applied: the orphan rules survive. A known id that
// is not found now stays a note (a second --fix of the same id is fine).
func TestDoctorFixUnknownID(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	ns.IPIn("rule", "add", "priority", "32765", "not", "fwmark", "0xca6c", "lookup", "51820")
	var out bytes.Buffer
	err := Run(context.Background(), &out, e, &Options{Fix: "orphan-rule,orphan-rules"})
	var ee *cmdutil.ExitError
	if !errors.As(err, &ee) || ee.Code != 2 {
		t.Fatalf("--fix with a typo: want exit 2, got %v\n%s", err, out.String())
	}
	msg := ee.Error()
	if !strings.Contains(msg, "orphan-rules") || !strings.Contains(msg, "findings now: orphan-rule") {
		t.Errorf("the error must name the unknown id and the findings there are now: %q", msg)
	}
	if !strings.Contains(ns.IPIn("rule"), "lookup 51820") {
		t.Fatal("a --fix with an unknown id applied something")
	}
	if rep, code := run(t, e, &Options{Fix: "orphan-rule"}); code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("--fix orphan-rule: exit %d, %s", code, ids(rep))
	}
	out.Reset()
	if err := Run(context.Background(), &out, e, &Options{Fix: "orphan-rule"}); err != nil || !strings.Contains(out.String(), "no such finding now") {
		t.Fatalf("--fix of a known id not found now: want exit 0 and a note, got %v\n%s", err, out.String())
	}
	out.Reset()
	err = Run(context.Background(), &out, e, &Options{Fix: "nope"})
	if !errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(ee.Error(), "findings now: none") {
		t.Fatalf("--fix nope on a healthy machine: want exit 2 naming no findings, got %v", err)
	}
}
