package agent

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// A `vpn up` that fails at any phase leaves the routing state as it was,
// no journal and no device, reports down with an error naming the phase,
// and the next `vpn up` works.
func TestUpFailureAtEachPhaseLeavesNothing(t *testing.T) {
	refuseAdd := func(n int) func(r *rig) {
		return func(r *rig) {
			adds := 0
			r.sys.Fail = func(c routes.Change) error {
				if c.Op != routes.OpAddRoute && c.Op != routes.OpAddRule {
					return nil
				}
				if adds++; adds == n {
					return errors.New("RTNETLINK answers: No buffer space available")
				}
				return nil
			}
		}
	}
	cases := []struct {
		name  string
		setup func(r *rig)
		req   func(req *control.UpRequest)
		want  string // in the error
	}{
		{name: "no token", req: func(q *control.UpRequest) { q.Token = "" }, want: "log in first"},
		{name: "plain http off loopback", req: func(q *control.UpRequest) { q.Server = "http://198.51.100.1:8080" }, want: "--allow-http"},
		{name: "token refused", req: func(q *control.UpRequest) { q.Token = "expired" }, want: "register with"},
		{name: "registration refused", setup: func(r *rig) { r.gw.set(func(g *fakeGateway) { g.status = http.StatusForbidden }) }, want: "registration refused by the test gateway"},
		{name: "unknown network", req: func(q *control.UpRequest) { q.Network = "ops" }, want: `may not join network "ops"`},
		{name: "session key not sealed to us", setup: func(r *rig) {
			r.gw.set(func(g *fakeGateway) { g.spoil = func(pc *api.PeerConfig) { pc.Session = nil } })
		}, want: "no session key"},
		{name: "loopback endpoint", setup: func(r *rig) { r.gw.set(func(g *fakeGateway) { g.endpoint = "127.0.0.1:1" }) }, want: "loopback"},
		{name: "too many prefixes", req: func(q *control.UpRequest) { q.MaxPrefixes = 1 }, want: "more than the 1 this client accepts"},
		{name: "tunnel address on the LAN", setup: func(r *rig) {
			r.gw.set(func(g *fakeGateway) { g.addrs = []string{"192.168.1.10/32"} })
		}, want: "bad peer config"},
		{name: "device", setup: func(r *rig) { r.upErr = errors.New("create TUN cp0: operation not permitted") }, want: "create tunnel"},
		{name: "first route refused", setup: refuseAdd(1), want: "install routes"},
		{name: "third route refused", setup: refuseAdd(3), want: "install routes"},
		{name: "no reply through the tunnel", setup: func(r *rig) { r.gw.set(func(g *fakeGateway) { g.mute = true }) },
			req: func(q *control.UpRequest) { q.Timeout = 700 * time.Millisecond }, want: "no reply from"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			before := r.snapshot()
			if c.setup != nil {
				c.setup(r)
			}
			req := r.request()
			if c.req != nil {
				c.req(&req)
			}
			st, err := r.up(req)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("up: %v; want an error saying %q", err, c.want)
			}
			if st.State != control.StateDown || st.Error != err.Error() {
				t.Errorf("status after the failure: state %s, error %q", st.State, st.Error)
			}
			r.sameAsBefore(before, "after the failed up")
			if r.journaled() {
				t.Error("journal left after the failed up")
			}
			if n := r.running(); n != 0 {
				t.Errorf("%d devices left running", n)
			}

			// Once the cause is gone, `vpn up` works.
			r.sys.Fail = nil
			r.mu.Lock()
			r.upErr = nil
			r.mu.Unlock()
			r.gw.set(func(g *fakeGateway) {
				g.status, g.spoil, g.mute, g.endpoint, g.addrs = 0, nil, false, "203.0.113.10:1", []string{clientAddr.String() + "/32"}
			})
			st, err = r.up(r.request())
			if err != nil || st.State != control.StateUp {
				t.Fatalf("up after the cause went: %+v %v", st, err)
			}
			if rt := r.lookup(inside); rt.Device != st.Interface {
				t.Errorf("%s goes %v after the retry", inside, rt)
			}
		})
	}
}
