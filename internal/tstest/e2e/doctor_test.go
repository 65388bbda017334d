package e2e

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// doctor runs `vpn doctor --json` (plus args) for c and returns the report
// and the exit code, as a script would read them.
func doctor(t *testing.T, c *stack.Client, args ...string) (analysis.Report, int, string) {
	t.Helper()
	out, err := c.Run(ctxT(t, 20*time.Second), append([]string{"doctor", "--json"}, args...)...)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vpn doctor: %v\n%s", err, out)
	}
	var rep analysis.Report
	i := strings.Index(out, "{")
	if i < 0 {
		t.Fatalf("vpn doctor printed no JSON (exit %d):\n%s", code, out)
	}
	if err := json.Unmarshal([]byte(out[i:]), &rep); err != nil {
		t.Fatalf("vpn doctor --json: %v\n%s", err, out)
	}
	return rep, code, out
}

func finding(rep analysis.Report, id string) *analysis.Finding {
	for i := range rep.Findings {
		if rep.Findings[i].ID == id {
			return &rep.Findings[i]
		}
	}
	return nil
}

func findingIDs(rep analysis.Report) []string {
	var ids []string
	for _, f := range rep.Findings {
		ids = append(ids, f.ID+":"+string(f.Severity))
	}
	return ids
}

// TestDoctorWithATunnelUp: two live scenarios that need a running session.
// A pushed 10.0.0.0/8 over the laptop's LAN is reported as an overlap with
// the winner (exit 0: it is handled). Then another program's rule sends the
// gateway endpoint into our tunnel: doctor names the loop with the route and
// rule that cause it, `--fix endpoint-loop` removes exactly that route, the
// tunnel carries traffic again, the next doctor is clean and the other
// program's healthy route in the same table is untouched.
func TestDoctorWithATunnelUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reconfigure(t, e, func(s string) string {
		return strings.Replace(s, `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`"]`, `allow: [10.0.0.0/8, "fd10:10::/64"]`, 1)
	})
	alice := e.Client("doc")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)

	rep, code, out := doctor(t, alice)
	ov := finding(rep, "subnet-overlap")
	if code != 0 || ov == nil || !strings.Contains(ov.Title, "10.0.0.0/8") || !strings.Contains(ov.Title, "lan wins") {
		t.Fatalf("overlap: want exit 0 and a subnet-overlap finding naming 10.0.0.0/8 and the LAN as winner, got exit %d %v\n%s", code, findingIDs(rep), out)
	}
	t.Logf("overlap finding: %s", ov.Title)

	// Another program: its table 100 routes 192.0.2.0/24 (healthy) and,
	// wrongly, the gateway endpoint into our tunnel; its rule sits ahead of ours.
	ctx := ctxT(t, 10*time.Second)
	for _, argv := range [][]string{
		{"ip", "route", "add", "192.0.2.0/24", "via", lab.HostLANIP4, "table", "100"},
		{"ip", "route", "add", lab.GWPublicIP4 + "/32", "dev", alice.Iface, "table", "100"},
		{"ip", "rule", "add", "priority", "100", "lookup", "100"},
	} {
		if out, err := e.Laptop.Exec(ctx, argv...); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	e.unreachable(t, vpcA4, "with the endpoint looping into the tunnel")
	rep, code, out = doctor(t, alice)
	loop := finding(rep, "endpoint-loop")
	if code != 1 || loop == nil || !loop.Fixable {
		t.Fatalf("endpoint loop: want exit 1 and a fixable endpoint-loop, got exit %d %v\n%s", code, findingIDs(rep), out)
	}
	if len(loop.Commands) != 1 || !strings.Contains(loop.Commands[0], lab.GWPublicIP4) || !strings.Contains(loop.Commands[0], "table 100") {
		t.Errorf("the fix must name exactly the looping route: %v", loop.Commands)
	}
	if _, _, out := doctor(t, alice, "--fix", "endpoint-loop"); !strings.Contains(out, lab.GWPublicIP4) {
		t.Errorf("--fix endpoint-loop says nothing about what it removed:\n%s", out)
	}
	rep, code, out = doctor(t, alice)
	if code != 0 || finding(rep, "endpoint-loop") != nil {
		t.Fatalf("after --fix: want a clean doctor, got exit %d %v\n%s", code, findingIDs(rep), out)
	}
	if r, _ := e.Laptop.Exec(ctx, "ip", "route", "show", "table", "100"); !strings.Contains(r, "192.0.2.0/24 via "+lab.HostLANIP4) {
		t.Errorf("the other program's healthy route was touched: table 100 is now %q", r)
	}
	if r, _ := e.Laptop.Exec(ctx, "ip", "rule"); !strings.Contains(r, "100:\tfrom all lookup 100") {
		t.Errorf("the other program's rule was touched:\n%s", r)
	}
	v4, _ := tunnelAddrs(t, alice)
	deadline := time.Now().Add(15 * time.Second)
	for {
		src, err := e.Laptop.AskWhoAmI(ctxT(t, 3*time.Second), vpcA4)
		if err == nil && src == v4.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tunnel does not carry traffic after the fix: %v %q", err, src)
		}
		time.Sleep(200 * time.Millisecond)
	}
	down(t, alice)
}
