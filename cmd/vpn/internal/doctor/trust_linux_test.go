package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/netnstest"
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
		var ee *ExitError
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
