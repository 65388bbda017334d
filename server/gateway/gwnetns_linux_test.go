package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A route another program keeps in the gateway's table is never flushed:
// a start with it there is refused naming the table and the route, and
// one added while the gateway runs survives the stop. On main the start
// flushed table 1000 (the default of the first network) by number, and
// the stop flushed it again.
func TestForeignRouteInGatewayTableSurvives(t *testing.T) {
	l := newGWLab(t)
	before := l.state()
	l.exec("ip", "route", "add", "10.99.0.0/16", "via", "10.10.0.5", "table", "1000")
	withForeign := l.state()
	if out := l.check(); !strings.Contains(out, "CHECK read=true err=table 1000 holds routes the gateway does not own") {
		t.Fatalf("check does not refuse the table:\n%s", out)
	}
	if l.start(0, l.cfgPath) {
		l.stop()
		t.Fatal("the gateway started on a table holding a foreign route")
	}
	_, log := l.wait()
	if !strings.Contains(log, "table 1000 holds routes the gateway does not own") || !strings.Contains(log, "10.99.0.0/16 via 10.10.0.5 dev vpc0 table 1000") {
		t.Fatalf("refusal does not name the table and the route:\n%s", log)
	}
	l.same("after the refused start", withForeign, l.state())

	// Removed by its owner, the gateway starts; another program adds it
	// again while the gateway runs: the stop leaves it.
	l.exec("ip", "route", "del", "10.99.0.0/16", "via", "10.10.0.5", "table", "1000")
	if !l.start(0, l.cfgPath) {
		_, log := l.wait()
		t.Fatalf("gateway did not start:\n%s", log)
	}
	if out := l.exec("ip", "route", "show", "table", "1000"); !strings.Contains(out, "throw 10.10.0.0/16 proto 198") {
		t.Fatalf("the gateway's table:\n%s", out)
	}
	l.exec("ip", "route", "add", "10.99.0.0/16", "via", "10.10.0.5", "table", "1000")
	l.stop()
	l.same("after the stop", withForeign, l.state())
	l.exec("ip", "route", "del", "10.99.0.0/16", "via", "10.10.0.5", "table", "1000")
	l.same("in the end", before, l.state())
}

// A second `vpn-gateway serve` whose start fails (its network's UDP port
// is the running gateway's) is refused by the instance lock before it
// touches anything: the running gateway's table, rules and host guard stay.
// Same state_dir: the flock; another state_dir: the per-namespace socket.
// On main the second serve replaced the host guard with its own, flushed
// table 1000 when its device failed, and removed the host guard on exit:
// the running gateway's isolation was off until restart.
func TestSecondServeRefusedLeavesRunningIntact(t *testing.T) {
	l := newGWLab(t)
	before := l.state()
	if !l.start(0, l.cfgPath) {
		_, log := l.wait()
		t.Fatalf("gateway did not start:\n%s", log)
	}
	first := l.proc
	firstOut := l.out
	running := l.state()
	if !strings.Contains(running.nft, "clearpath_gw") || !strings.Contains(l.exec("ip", "rule"), "iif "+l.iface+" lookup 1000 proto 198") {
		t.Fatalf("running gateway not set up:\n%s\n%s", running.rendered, l.exec("ip", "rule"))
	}
	other := filepath.Join(filepath.Dir(l.dir), "other")
	os.Mkdir(other, 0o700)
	for _, c := range []struct{ name, stateDir, want string }{
		{"same state_dir", l.dir, "another vpn-gateway serve is running with state_dir"},
		{"other state_dir", other, "another vpn-gateway serve is running in this network namespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg2 := filepath.Join(filepath.Dir(l.cfgPath), "second.yaml")
			os.WriteFile(cfg2, []byte(l.config(c.stateDir, "127.0.0.1:18081", labNet{iface: l.iface + "b", port: 51820, table: 1000, allow: "10.10.0.0/16"})), 0o600)
			l2 := *l
			l2.t = t
			if l2.start(0, cfg2) {
				l2.stop()
				t.Fatal("a second gateway started")
			}
			_, log := l2.wait()
			if !strings.Contains(log, c.want) {
				t.Fatalf("second serve: want %q in\n%s", c.want, log)
			}
			l2.same("the running gateway after a second serve", running, l2.state())
		})
	}
	l.proc, l.out = first, firstOut
	l.stop()
	l.same("after the stop", before, l.state())
}

// kill -9, restart, clean stop: forwarding is off again and the rules and
// tables are exactly as before the first start. On main the restart read
// ip_forward=1 (left by the killed gateway) as the original value and the
// stop left forwarding on.
func TestKillRestartStopRestoresHost(t *testing.T) {
	l := newGWLab(t)
	l.exec("ip", "rule", "add", "priority", "5270", "lookup", "52")
	l.exec("ip", "route", "add", "10.200.0.0/16", "via", "10.10.0.5", "table", "52")
	before := l.state()
	if !l.start(0, l.cfgPath) {
		_, log := l.wait()
		t.Fatalf("gateway did not start:\n%s", log)
	}
	l.signal(syscall.SIGKILL)
	if killed, _ := l.wait(); !killed {
		t.Fatal("not killed")
	}
	if s := l.state(); !strings.HasPrefix(s.sysctls, "1") || !strings.Contains(l.exec("ip", "rule"), "proto 198") {
		t.Fatalf("the kill left nothing to recover (the test tests nothing): %s", s.rendered)
	}
	if !l.start(0, l.cfgPath) {
		_, log := l.wait()
		t.Fatalf("restart after kill -9 failed:\n%s", log)
	}
	if rules := l.exec("ip", "rule"); strings.Count(rules, "iif "+l.iface) != 1 {
		t.Fatalf("after the restart the rule is not there exactly once:\n%s", rules)
	}
	log := l.stop()
	l.same("after kill -9, restart and stop", before, l.state())
	if !strings.Contains(log, "recovered routes left by a previous session") {
		t.Errorf("the restart did not report recovering:\n%s", log)
	}
}

// A start whose second network cannot come up (its interface name is
// taken) undoes exactly the steps before: forwarding back to 0, no rule,
// route, address or nftables table left.
func TestFailedStartRestoresHost(t *testing.T) {
	l := newGWLab(t)
	l.flows = "auto"
	before := l.state()
	l.writeConfig(l.config(l.dir, "127.0.0.1:18080",
		labNet{iface: l.iface, port: 51820, table: 1000, allow: "10.10.0.0/16"},
		labNet{iface: "vpc0", port: 51821, table: 1001, allow: "10.20.0.0/16"}))
	if l.start(0, l.cfgPath) {
		l.stop()
		t.Fatal("started with a taken interface name")
	}
	_, log := l.wait()
	if !strings.Contains(log, "networks[1] (n1)") || !strings.Contains(log, "nothing is left set up") {
		t.Fatalf("error does not name the network:\n%s", log)
	}
	l.same("after a failed start", before, l.state())
}
