package agent

import (
	"errors"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
)

// RecoverOffline, what `vpn down` without an agent and `vpn routes
// restore` run: nothing left is Clean and changes nothing; what a crashed
// session left is undone to the routing state from before its up; an
// agent holding the state dir's lock is ErrRunning and nothing is touched.
func TestRecoverOffline(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	rec, err := RecoverOffline(r.a.dir, r.sys)
	if err != nil || !rec.Clean || rec.Routes != nil {
		t.Fatalf("nothing left: %+v, %v; want Clean", rec, err)
	}
	r.sameAsBefore(before, "recovery with nothing left")

	req := r.request()
	req.AllTraffic = true
	if _, err := r.up(req); err != nil {
		t.Fatal(err)
	}
	r.crash()
	if rs, rules := r.owned(); len(rs)+len(rules) == 0 || !r.journaled() {
		t.Fatal("the crash left nothing to recover: the test proves nothing")
	}

	unlock, err := Lock(r.a.dir, 0) // as a running agent holds it
	if err != nil {
		t.Fatal(err)
	}
	left := r.snapshot()
	if _, err := RecoverOffline(r.a.dir, r.sys); !errors.Is(err, ErrRunning) {
		t.Fatalf("lock held: %v, want ErrRunning", err)
	}
	if d := routes.Compare(left, r.snapshot()); !d.Empty() || !r.journaled() {
		t.Fatalf("a refused recovery changed something: %+v", d)
	}
	unlock()

	rec, err = RecoverOffline(r.a.dir, r.sys)
	if err != nil || rec.Clean || rec.Routes == nil || len(rec.Routes.Undone)+len(rec.Routes.Swept) == 0 || len(rec.Routes.Problems) != 0 {
		t.Fatalf("after a crash: %+v (routes %+v), %v", rec, rec.Routes, err)
	}
	r.sameAsBefore(before, "recovery after a crash")
	if r.journaled() {
		t.Error("the journal is still there after the recovery")
	}
	if warn, _ := rec.DNSNotes(); warn != "" {
		t.Errorf("DNS warning with no DNS session: %q", warn)
	}
}
