package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/routes"
)

// serve puts a on a real control socket (as run does, without the
// start-up recovery) and returns a client of it.
func (r *rig) serve(a *Agent, name string) *control.Client {
	r.t.Helper()
	sock := filepath.Join(r.dir, name)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		r.t.Fatal(err)
	}
	srv := &http.Server{Handler: control.NewServer(a, nil, control.Policy{Open: true})}
	go srv.Serve(ln)
	r.t.Cleanup(func() { srv.Close() })
	return control.NewClient(sock)
}

// The tray's "Restore routes" over the control socket: refused while a
// session holds routes (nothing changes, the session keeps working), and
// on an idle agent it restores what a crashed session left exactly, as
// the agent's start does (here the start-up recovery did not run, as when
// it failed and the cause has gone since).
func TestRestoreOverTheSocket(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	req := r.request()
	req.AllTraffic = true
	if _, err := r.up(req); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	up := r.snapshot()
	c := r.serve(r.a, "up.sock")
	if rep, err := c.Restore(ctx); !errors.Is(err, control.ErrSessionActive) {
		t.Fatalf("restore while up: %+v %v, want refused", rep, err)
	}
	if d := routes.Compare(up, r.snapshot()); !d.Empty() || r.state() != control.StateUp || !r.journaled() {
		t.Fatalf("a refused restore changed something: %+v, state %s", d, r.state())
	}
	// The engine refuses too, whatever its caller checked.
	if _, err := r.a.engine.Recover(); err == nil {
		t.Error("Recover during the engine's own session: no error")
	}

	r.crash()
	if rs, rules := r.owned(); len(rs)+len(rules) == 0 || !r.journaled() {
		t.Fatal("the crash left nothing to restore")
	}
	c = r.serve(r.a, "idle.sock")
	rep, err := c.Restore(ctx)
	if err != nil || rep.Undone+rep.Swept == 0 || len(rep.Problems) != 0 {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	r.sameAsBefore(before, "after the restore")
	if r.journaled() {
		t.Error("journal left after the restore")
	}
	if rep, err := c.Restore(ctx); err != nil || rep.Undone+rep.Swept != 0 {
		t.Errorf("second restore: %+v %v, want nothing to do", rep, err)
	}
}
