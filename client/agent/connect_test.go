package agent

import (
	"net/netip"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/routes"
)

// `vpn up` registers, brings the device up, installs the pushed prefixes
// through the journal, proves a ping crosses the tunnel (a real WireGuard
// handshake between two wireguard-go devices) and reports up; `vpn down`
// puts the routing state back exactly.
func TestUpInstallsJournaledRoutesAndDownRestoresExactly(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	st, err := r.up(r.request())
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if st.State != control.StateUp || st.Interface != "cp0" || st.Network != "eng" || st.PeerID != "peer-1" {
		t.Fatalf("status after up: %+v", st)
	}
	if st.LatestHandshake == nil {
		t.Error("status shows no WireGuard handshake after up")
	}
	if st.ExpiresAt == nil || st.RenewAt == nil || !st.RenewAt.Before(*st.ExpiresAt) {
		t.Errorf("expiry %v, renewal %v: want a renewal before the expiry", st.ExpiresAt, st.RenewAt)
	}
	if st.FullTunnel {
		t.Error("split tunnel reported as full")
	}
	// The kernel (here the in-memory system) sends the pushed prefix into
	// the tunnel and everything else where it went before.
	if rt := r.lookup(inside); rt.Device != "cp0" {
		t.Errorf("%s goes %v, want into cp0", inside, rt)
	}
	if rt := r.lookup(internet); rt.Device != "eth0" {
		t.Errorf("%s goes %v, want eth0 (outside the split tunnel)", internet, rt)
	}
	if !r.journaled() {
		t.Error("no journal while routes are installed")
	}
	rs, rules := r.owned()
	if len(rs) == 0 || len(rules) == 0 {
		t.Fatalf("no owned routes/rules installed: %v %v", rs, rules)
	}
	if len(st.Routes) != len(rs) || len(st.Rules) != len(rules) {
		t.Errorf("status lists %d routes, %d rules; the system has %d, %d", len(st.Routes), len(st.Rules), len(rs), len(rules))
	}
	if regs := r.gw.registrations(); len(regs) != 1 || regs[0] != st.PublicKey {
		t.Errorf("gateway registrations %v, status key %s", regs, st.PublicKey)
	}
	// The device and the route session were prepared during the
	// registration (prepare.go), not after it.
	r.mu.Lock()
	prepared := r.prepared
	r.mu.Unlock()
	if prepared != 1 {
		t.Errorf("%d devices prepared during the registration, want 1", prepared)
	}

	// A second up to the same server and network is answered with the
	// current status; another server is refused naming `vpn down`.
	again, err := r.up(r.request())
	if err != nil || again.State != control.StateUp || again.Interface != "cp0" {
		t.Errorf("up while up: %+v %v", again, err)
	}
	other := r.request()
	other.Server = "https://other.example"
	if _, err := r.up(other); err == nil || !contains(err, "vpn down") {
		t.Errorf("up to another server while up: %v", err)
	}

	down, err := r.a.Down(t.Context())
	if err != nil || down.State != control.StateDown || down.Error != "" {
		t.Fatalf("down: %+v %v", down, err)
	}
	r.sameAsBefore(before, "after down")
	if r.journaled() {
		t.Error("journal left after down")
	}
	if n := r.running(); n != 0 {
		t.Errorf("%d devices still run after down", n)
	}
	if rt := r.lookup(inside); rt.Device != "eth0" {
		t.Errorf("after down %s goes %v, want eth0", inside, rt)
	}
}

// A full tunnel (--all-traffic) sends the internet into the tunnel but
// keeps the LAN outside, and the status says full because the kernel has
// the default routes.
func TestFullTunnelKeepsLANAndReportsFull(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	req := r.request()
	req.AllTraffic = true
	st, err := r.up(req)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if !st.FullTunnel {
		t.Error("status does not report the full tunnel")
	}
	if rt := r.lookup(internet); rt.Device != "cp0" {
		t.Errorf("%s goes %v, want cp0", internet, rt)
	}
	if rt := r.lookup(lanHost); rt.Device != "eth0" {
		t.Errorf("LAN host %s goes %v, want eth0", lanHost, rt)
	}
	// The WireGuard socket's own packets (marked) still reach the endpoint
	// outside the tunnel.
	ep, err := r.sys.Lookup(routes.Query{Dst: mustAddr("203.0.113.10"), FwMark: routes.FwMark})
	if err != nil || ep.Device != "eth0" {
		t.Errorf("marked packets to the endpoint go %v (%v), want eth0", ep, err)
	}
	r.a.Down(t.Context())
	r.sameAsBefore(before, "after down")
}

// A network that appears while connected (a docker bridge inside a pushed
// prefix) is re-planned around when the watcher fires: its hosts stay
// reachable on their link; down removes only our items and leaves the
// new network's route alone.
func TestNetworkChangeIsReplanned(t *testing.T) {
	r := newRig(t)
	withBridge := r.snapshot() // what down must leave: the host plus the bridge
	if _, err := r.up(r.request()); err != nil {
		t.Fatal(err)
	}
	bridgeHost := mustAddr("10.20.5.9")
	if rt := r.lookup(bridgeHost); rt.Device != "cp0" {
		t.Fatalf("before the bridge, %s goes %v", bridgeHost, rt)
	}
	r.sys.AddLink(routes.Link{Name: "docker0", Type: "bridge", Up: true})
	snap := r.snapshot()
	snap.Addresses = append(snap.Addresses, routes.Address{Device: "docker0", Prefix: netip.MustParsePrefix("10.20.5.1/24")})
	bridge := routes.Route{Family: 4, Table: 254, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.20.5.0/24"), Device: "docker0", Src: mustAddr("10.20.5.1"), Protocol: 2, Scope: 253}
	snap.Routes = append(snap.Routes, bridge)
	r.sys.Set(snap)
	withBridge.Links = append(withBridge.Links, snap.Links[len(snap.Links)-1])
	withBridge.Addresses = append(withBridge.Addresses, snap.Addresses[len(snap.Addresses)-1])
	withBridge.Routes = append(withBridge.Routes, bridge)

	r.mu.Lock()
	changed := r.onChange
	r.mu.Unlock()
	if changed == nil {
		t.Fatal("the agent registered no network watcher")
	}
	changed()
	if rt := r.lookup(bridgeHost); rt.Device != "docker0" {
		t.Errorf("after the re-plan %s goes %v, want docker0", bridgeHost, rt)
	}
	if rt := r.lookup(inside); rt.Device != "cp0" {
		t.Errorf("after the re-plan %s goes %v, want cp0", inside, rt)
	}
	r.a.Down(t.Context())
	r.sameAsBefore(withBridge, "after down")
}
