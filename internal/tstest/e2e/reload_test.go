package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

type netSpec struct {
	name, group, iface string
	port               int
	pool, allow        []string
	table              int
}

// writeNetworks replaces the networks of the lab's gateway configuration.
func (e *env) writeNetworks(t *testing.T, nets ...netSpec) {
	t.Helper()
	raw, err := os.ReadFile(e.GatewayConfig)
	must(t, err)
	head, _, ok := strings.Cut(string(raw), "\nnetworks:\n")
	if !ok {
		t.Fatalf("no networks: in %s", e.GatewayConfig)
	}
	var b strings.Builder
	b.WriteString(head + "\nnetworks:\n")
	for _, n := range nets {
		fmt.Fprintf(&b, "  - name: %s\n    group: %s\n    interface: %s\n    listen_port: %d\n    pool: [%s]\n    allow: [%s]\n",
			n.name, n.group, n.iface, n.port, quoteAll(n.pool), quoteAll(n.allow))
		if n.table != 0 {
			fmt.Fprintf(&b, "    table: %d\n", n.table)
		}
	}
	must(t, os.WriteFile(e.GatewayConfig, []byte(b.String()), 0o644))
}

func quoteAll(ss []string) string {
	var q []string
	for _, s := range ss {
		q = append(q, `"`+s+`"`)
	}
	return strings.Join(q, ", ")
}

// netState is what `ip` says about gw's links, rules and tables.
func (e *env) netState(t *testing.T) string {
	t.Helper()
	st, err := e.GW.RoutingState(ctxT(t, 5*time.Second))
	must(t, err)
	links, err := e.GW.Exec(ctxT(t, 5*time.Second), "ip", "-o", "link", "show")
	must(t, err)
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(links), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return "links: " + strings.Join(names, " ") + "\n" + st
}

// A reload adds and removes networks and changes allow lists; a ping loop
// through the network it leaves alone loses nothing. A reload that cannot
// be applied names the field and changes nothing.
func TestReloadAppliesDiffWithoutDroppingOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("alice")
	at, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	ct, err := e.TokenFile(ctxT(t, 10*time.Second), "carol")
	must(t, err)
	up(t, alice, at)
	// carol registers through the API (one tunnel per laptop namespace).
	ck, cpc := registerKey(t, e, readToken(t, ct), "")
	carolKey := ck.PublicKey().String()
	if !e.onDevice(t, e.OpsIface, carolKey) {
		t.Fatal("carol's key is not on ops")
	}
	forceIntoTunnel(t, e, alice, lab.VPCB4)
	e.unreachable(t, vpcB4, "before the reload vpc-b is not engineering's")

	eng := netSpec{"eng", "engineering", e.EngIface, lab.EngPort, []string{lab.EngPool4, lab.EngPool6}, []string{lab.VPCA4, lab.VPCA6}, 0}
	ops := netSpec{"ops", "ops", e.OpsIface, lab.OpsPort, []string{lab.OpsPool4, lab.OpsPool6}, []string{lab.VPCB4, lab.VPCB6}, 0}
	qaIface := e.Prefix + "qa"
	qa := netSpec{"qa", "qa", qaIface, 51822, []string{"100.66.0.0/24", "fd00:66::/64"}, []string{lab.VPCB4, lab.VPCB6}, 0}

	pl := startPingLoop(t, e.Laptop, lab.VPCAIP4, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond)

	// 1. ops goes, qa comes (taking the table ops had: 1001), eng may
	//    reach vpc-b too. Through `vpn-gateway reload`.
	eng2 := eng
	eng2.allow = append([]string{lab.VPCB4}, eng.allow...)
	e.writeNetworks(t, eng2, qa)
	out := e.adminOK(t, "reload")
	t.Logf("reload 1: %s", strings.TrimSpace(out))
	for _, want := range []string{"remove ops", "add qa", "update eng allow +" + lab.VPCB4} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output lacks %q:\n%s", want, out)
		}
	}
	st := e.netState(t)
	if strings.Contains(st, e.OpsIface) {
		t.Errorf("ops' interface or rules remain after its removal:\n%s", st)
	}
	if !strings.Contains(st, "iif "+qaIface+" lookup 1001") || !strings.Contains(st, "throw 10.20.0.0/16 table 1001") {
		t.Errorf("qa's rule and table missing:\n%s", st)
	}
	if e.onDevice(t, e.EngIface, carolKey) {
		t.Error("carol's key moved to eng")
	}
	if got := e.reach(t, vpcB4); got == "" {
		t.Error("after the reload alice cannot reach vpc-b")
	}

	// 2. Back to eng without vpc-b, by SIGHUP.
	e.writeNetworks(t, eng, qa)
	must(t, e.Gateway.Signal(syscall.SIGHUP))
	if _, ok := waitUntil(5*time.Second, func() bool {
		st := e.netState(t)
		return !strings.Contains(st, "throw 10.20.0.0/16 table 1000")
	}); !ok {
		t.Fatalf("SIGHUP did not take vpc-b out of eng's table:\n%s", e.netState(t))
	}
	e.unreachable(t, vpcB4, "after SIGHUP vpc-b is no longer engineering's")

	// 3. Refused reloads change nothing: a bad field, and a port in use.
	before := e.netState(t)
	bad := qa
	bad.allow = []string{"10.20.0.1/16"}
	e.writeNetworks(t, eng, bad)
	out, code := e.admin(t, "reload")
	if code == 0 || !strings.Contains(out, "networks[1].allow[0]: 10.20.0.1/16 has host bits set") {
		t.Errorf("bad allow: exit %d\n%s", code, out)
	}
	busy, err := e.GW.ListenPacket("udp", ":51829")
	must(t, err)
	defer busy.Close()
	dev := netSpec{"dev", "developers", e.Prefix + "dev", 51829, []string{"100.67.0.0/24"}, []string{lab.VPCA4}, 0}
	e.writeNetworks(t, eng, qa, dev)
	out, code = e.admin(t, "reload")
	if code == 0 || !strings.Contains(out, "networks[2].listen_port: UDP port 51829 is in use") {
		t.Errorf("port in use: exit %d\n%s", code, out)
	}
	if after := e.netState(t); after != before {
		t.Errorf("a refused reload changed the gateway:\n--- before\n%s\n--- after\n%s", before, after)
	}
	// Changing a running network's pool is refused, naming it.
	e.writeNetworks(t, eng, netSpec{"qa", "qa", qaIface, 51822, []string{"100.69.0.0/24"}, []string{lab.VPCB4}, 0})
	if out, code = e.admin(t, "reload"); code == 0 || !strings.Contains(out, "networks[1].pool: the pool of running network qa cannot change") {
		t.Errorf("pool change: exit %d\n%s", code, out)
	}

	// 4. ops comes back: carol's key, still registered, is served by its
	// new device: a registered peer of ops (its device takes it on at her
	// next handshake, lazy peers), shown in the metrics.
	e.writeNetworks(t, eng, qa, netSpec{"ops", "ops", e.OpsIface, lab.OpsPort, ops.pool, ops.allow, 1005})
	out = e.adminOK(t, "reload")
	t.Logf("reload 4: %s", strings.TrimSpace(out))
	if _, text := e.scrape(t, "/metrics"); !strings.Contains(text, `network="ops"`) || !strings.Contains(text, `peer_id="`+cpc.PeerID+`"`) {
		t.Error("carol's key is not a registered peer of the re-added ops network")
	} else if _, ok := metricValue(text, "clearpath_peer_last_handshake_seconds", `network="ops"`, `peer_id="`+cpc.PeerID+`"`); !ok {
		t.Error("carol's key is not a registered peer of the re-added ops network")
	}

	sent, lost := pl.Stop()
	if lost != 0 {
		t.Errorf("the ping loop through eng lost %d of %d packets across four reloads", lost, sent)
	}
	t.Logf("RELOAD: ping loop alice -> vpc-a every 10ms: %d sent, %d lost across 3 applied and 3 refused reloads", sent, lost)
	recs := e.auditLog(t, "--action", "reload")
	if !hasAudit(recs, "reload", "root", "admin socket", "add qa") || !hasAudit(recs, "reload", "SIGHUP") || !hasAudit(recs, "reload", "failed, nothing changed", "51829 is in use") {
		t.Errorf("reload audit entries: %+v", recs)
	}
	_, m := e.scrape(t, "/metrics")
	if v, _ := metricValue(m, "clearpath_config_reloads_total", `result="ok"`); v != 3 {
		t.Errorf("reloads ok = %v, want 3", v)
	}
	if v, _ := metricValue(m, "clearpath_networks"); v != 3 {
		t.Errorf("clearpath_networks = %v, want 3", v)
	}
}
