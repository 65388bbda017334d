package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
)

// Without access to the agent's socket, or with an agent holding the lock
// but not answering, doctor refuses rather than call the live tunnel's
// routes leftovers (and offer the commands deleting them).
func TestDoctorDoesNotGuessWithoutTheAgent(t *testing.T) {
	ns := netnstest.New(t)
	for name, c := range map[string]struct {
		agentErr error
		running  bool
		want     string
	}{
		"no access": {fmt.Errorf("cannot open the agent's socket: %w", control.ErrNoAccess), false, "join the clearpath group or use sudo"},
		"silent":    {control.ErrNoAgent, true, "an agent (pid 4242) holds the state dir"},
	} {
		e := env(ns)
		e.Agent = func(context.Context) (*control.Status, error) { return nil, c.agentErr }
		e.Running = func() (int, bool, bool) { return 4242, c.running, true }
		var out bytes.Buffer
		err := Run(context.Background(), &out, e, &Options{Fix: "ours"})
		var ee *cmdutil.ExitError
		if !errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want exit 2 with %q", name, err, c.want)
		}
		if strings.Contains(out.String(), "fixed") {
			t.Errorf("%s: doctor fixed something:\n%s", name, out.String())
		}
	}
}

// A fail-closed agent after an expiry: doctor says the block is on purpose.
func TestDoctorShowsFailClosedBlock(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	e.Agent = func(context.Context) (*control.Status, error) {
		return &control.Status{State: control.StateBlocked, FullTunnel: true, FailClosed: true, Interface: "cp9",
			Error: "the registration expired at X and could not be renewed; fail-closed"}, nil
	}
	rep, code := run(t, e, &Options{})
	if code != 1 || len(rep.Findings) == 0 || rep.Findings[0].ID != "fail-closed-block" || !strings.Contains(rep.Findings[0].Explanation, "expired") {
		t.Fatalf("exit %d, findings %s", code, ids(rep))
	}
}

// What a hostile gateway's address would leave on the tunnel on today's
// main (128.0.0.2/1: a kernel route to 128.0.0.0/1 in main, not journaled)
// next to the assigned /32: doctor names the address, shows the kernel's
// route and says how to remove it; the assigned /32 is not a finding.
func TestDoctorFlagsUnassignedTunnelAddress(t *testing.T) {
	ns := netnstest.New(t)
	ns.IPIn("tuntap", "add", "dev", "cp7", "mode", "tun")
	ns.IPIn("link", "set", "cp7", "up")
	ns.IPIn("addr", "add", "100.64.0.2/32", "dev", "cp7", "noprefixroute")
	e := env(ns)
	e.Agent = func(context.Context) (*control.Status, error) {
		return &control.Status{State: control.StateUp, Interface: "cp7", Addresses: []string{"100.64.0.2/32"}}, nil
	}
	rep, _ := run(t, e, &Options{})
	if strings.Contains(ids(rep), "tunnel-address") {
		t.Fatalf("only the assigned /32 on cp7: findings %s", ids(rep))
	}
	ns.IPIn("addr", "add", "128.0.0.2/1", "dev", "cp7")
	rep, code := run(t, e, &Options{})
	var found bool
	for _, f := range rep.Findings {
		if f.ID != "tunnel-address" {
			continue
		}
		found = true
		var ev []string
		for _, x := range f.Evidence {
			ev = append(ev, x.Kind+": "+x.Text)
		}
		if f.Severity != "error" || !strings.Contains(f.Title, "128.0.0.2/1") || len(f.Commands) != 1 ||
			f.Commands[0] != "sudo ip address del 128.0.0.2/1 dev cp7" || !strings.Contains(strings.Join(ev, "\n"), "128.0.0.0/1 dev cp7") {
			t.Fatalf("finding: %+v\nevidence:\n%s", f, strings.Join(ev, "\n"))
		}
		if f.Fixable || len(f.Fix) != 0 {
			t.Fatalf("doctor --fix must not remove an address it did not add: %+v", f)
		}
	}
	if !found || code != 1 {
		t.Fatalf("exit %d, findings %s: want tunnel-address", code, ids(rep))
	}
}
