package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// /metrics, /healthz, peers list, explain and doctor, checked against
// what really happens in the lab.
func TestMetricsExplainAndDoctor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	up(t, alice, tok)
	v4, _ := tunnelAddrs(t, alice)
	for range 3 {
		e.reach(t, vpcA4)
	}
	// One refused registration for the counters.
	if code, _, _ := register(t, e, "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("bad token: %d", code)
	}

	// peers list
	var mine *listedPeer
	if _, ok := waitUntil(3*time.Second, func() bool {
		for _, p := range e.listPeers(t) {
			if p.User == "alice@example.com" && p.RxBytes > 0 {
				mine = &p
				return true
			}
		}
		return false
	}); !ok {
		t.Fatalf("peers list --json has no alice with traffic: %+v", e.listPeers(t))
	}
	if mine.Network != "eng" || !mine.OnDevice || mine.LastHandshake == nil || mine.TxBytes == 0 || mine.Addresses[0] != v4.String() || time.Until(mine.ExpiresAt) < time.Hour {
		t.Errorf("alice in peers list: %+v", *mine)
	}
	table := e.adminOK(t, "peers", "list")
	if !strings.Contains(table, "alice@example.com") || !strings.Contains(table, v4.String()) || !strings.Contains(table, "LAST HANDSHAKE") {
		t.Errorf("peers list:\n%s", table)
	}
	t.Logf("peers list:\n%s", table)

	// /metrics, scraped as Prometheus would.
	code, m := e.scrape(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	checks := []struct {
		name   string
		labels []string
		ok     func(float64) bool
		want   string
	}{
		{"clearpath_peers", []string{`network="eng"`}, func(v float64) bool { return v == 1 }, "1"},
		{"clearpath_peers", []string{`network="ops"`}, func(v float64) bool { return v == 0 }, "0"},
		{"clearpath_peers_connected", []string{`network="eng"`}, func(v float64) bool { return v == 1 }, "1"},
		{"clearpath_peer_receive_bytes_total", []string{`user="alice@example.com"`, `network="eng"`}, func(v float64) bool { return v > 0 }, "> 0"},
		{"clearpath_peer_transmit_bytes_total", []string{`user="alice@example.com"`}, func(v float64) bool { return v > 0 }, "> 0"},
		{"clearpath_peer_last_handshake_seconds", []string{`user="alice@example.com"`}, func(v float64) bool { return v > float64(time.Now().Add(-time.Minute).Unix()) }, "within a minute"},
		{"clearpath_registrations_total", []string{`result="ok"`}, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"clearpath_registrations_total", []string{`result="unauthorized"`}, func(v float64) bool { return v == 1 }, "1"},
		{"clearpath_errors_total", []string{`kind="api"`}, func(v float64) bool { return v == 0 }, "0"},
		{"clearpath_audit_entries_total", []string{`action="login"`}, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"clearpath_store_up", nil, func(v float64) bool { return v == 1 }, "1"},
		{"clearpath_networks", nil, func(v float64) bool { return v == 2 }, "2"},
	}
	for _, c := range checks {
		if v, ok := metricValue(m, c.name, c.labels...); !ok || !c.ok(v) {
			t.Errorf("%s%v = %v (present %v), want %s", c.name, c.labels, v, ok, c.want)
		}
	}
	if !strings.Contains(m, "# TYPE clearpath_peer_receive_bytes_total counter") || !strings.Contains(m, "go_goroutines") {
		t.Errorf("not Prometheus text format with type lines and Go collectors")
	}
	code, body := e.scrape(t, "/healthz")
	var hz struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &hz) != nil || hz.Status != "ok" || hz.Checks["network eng"] != "ok" || hz.Checks["store"] != "ok" {
		t.Errorf("/healthz: %d %s", code, body)
	}

	// explain: allowed and refused, decided by real lookups.
	out, code2 := e.admin(t, "explain", "alice", lab.VPCAIP4+":8000")
	t.Logf("explain alice vpc-a:\n%s", out)
	// The path shows every step of the walk: eng's table throws, ops'
	// rule does not match a packet from eng, main decides.
	if code2 != 0 || !strings.HasPrefix(out, "YES") || !strings.Contains(out, "throw 10.10.0.0/16 table 1000") || !strings.Contains(out, "throw: on to the next rule") ||
		!strings.Contains(out, "no match (iif "+e.OpsIface+", the packet comes in on "+e.EngIface+")") ||
		!strings.Contains(out, "ip route get fibmatch 10.10.0.10 from "+v4.String()+" iif "+e.EngIface+": 10.10.0.0/16 dev") || !strings.Contains(out, "port 8000") {
		t.Errorf("explain alice vpc-a (exit %d):\n%s", code2, out)
	}
	out, code2 = e.admin(t, "explain", "alice@example.com", lab.VPCBIP4)
	t.Logf("explain alice vpc-b:\n%s", out)
	if code2 != 1 || !strings.HasPrefix(out, "NO") || !strings.Contains(out, `rule "1000: from all iif `+e.EngIface+` lookup 1000`) || !strings.Contains(out, `route "blackhole 0.0.0.0/0 table 1000`) || !strings.Contains(out, "EINVAL") {
		t.Errorf("explain alice vpc-b (exit %d):\n%s", code2, out)
	}
	out, code2 = e.admin(t, "explain", "alice", "["+lab.VPCAIP6+"]:22", "--json")
	var ans struct {
		Schema    string `json:"schema"`
		Reachable bool   `json:"reachable"`
		Networks  []struct {
			Allowed bool   `json:"allowed"`
			Kernel  string `json:"kernel"`
			Source  string `json:"source"`
			Steps   []struct {
				Matched bool   `json:"matched"`
				Outcome string `json:"outcome"`
			} `json:"steps"`
		} `json:"networks"`
	}
	if code2 != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Schema != "clearpath.explain/v1" || !ans.Reachable || len(ans.Networks) != 1 || !strings.HasPrefix(ans.Networks[0].Source, "fd00:64::") ||
		len(ans.Networks[0].Steps) == 0 || ans.Networks[0].Steps[len(ans.Networks[0].Steps)-1].Outcome != "decides" {
		t.Errorf("explain --json over IPv6 (exit %d):\n%s", code2, out)
	}
	// What the explanation says is what the packets do.
	e.unreachable(t, vpcB4, "explain said no")

	// doctor: healthy, then a VPC loses its route back to the pool.
	probes := []string{"--probe", lab.VPCAIP4, "--probe", lab.VPCAIP6, "--probe", lab.VPCBIP4, "--probe", lab.VPCBIP6}
	out, code2 = e.admin(t, append([]string{"doctor"}, probes...)...)
	t.Logf("doctor (healthy):\n%s", out)
	if code2 != 0 || !strings.Contains(out, "Healthy") || strings.Count(out, "(return-route)") != 4 {
		t.Errorf("doctor on a healthy gateway: exit %d\n%s", code2, out)
	}
	// A wg-quick-style rule on the gateway host (lookup main
	// suppress_prefixlength 0, before the networks' rules) skips main's
	// default route only. Elsewhere the kernel still blackholes what eng
	// may not reach: explain agrees with it (the old walk ignored
	// suppress_prefixlength 0, let main's default decide, and contradicted
	// the kernel). But main's more specific routes now decide before the
	// networks' rules: doctor reports that real leak with the walk's steps.
	// (The lab gateway has no default route: give it one for this.)
	must(t, e.GW.IP("-4", "route", "add", "default", "via", lab.HostPublicIP4))
	must(t, e.GW.IP("-4", "rule", "add", "pref", "900", "lookup", "main", "suppress_prefixlength", "0"))
	out, code2 = e.admin(t, "explain", "alice", "203.0.113.77")
	t.Logf("explain alice 203.0.113.77 with the suppress rule:\n%s", out)
	if code2 != 1 || !strings.Contains(out, "900: from all lookup main suppress_prefixlength 0 -> 0.0.0.0/0") || !strings.Contains(out, "suppressed (/0 <= suppress_prefixlength 0)") ||
		!strings.Contains(out, `decided: rule "1000: from all iif `+e.EngIface+` lookup 1000`) || strings.Contains(out, "trust the kernel") || !strings.Contains(out, "EINVAL") {
		t.Errorf("explain with a suppress_prefixlength 0 rule (exit %d):\n%s", code2, out)
	}
	out, code2 = e.admin(t, append([]string{"doctor"}, probes...)...)
	if code2 != 1 || strings.Count(out, "(policy-leak)") != 2 || !strings.Contains(out, "900: from all lookup main suppress_prefixlength 0 -> "+lab.IDPN4) {
		t.Errorf("doctor with a suppress_prefixlength 0 rule: exit %d\n%s", code2, out)
	}
	must(t, e.GW.IP("-4", "rule", "del", "pref", "900"))
	must(t, e.GW.IP("-4", "route", "del", "default", "via", lab.HostPublicIP4))
	must(t, e.VPCA.IP("-4", "route", "del", "default", "via", lab.GWVPCAIP4))
	out, code2 = e.admin(t, append([]string{"doctor"}, probes...)...)
	t.Logf("doctor (vpc-a without its IPv4 route back):\n%s", out)
	if code2 != 1 || !strings.Contains(out, "no-return-route") || !strings.Contains(out, "destination "+lab.EngPool4+" -> target this gateway ("+lab.GWVPCAIP4) ||
		!strings.Contains(out, "ip route add "+lab.EngPool4+" via "+lab.GWVPCAIP4) || strings.Count(out, "(return-route)") != 3 {
		t.Errorf("doctor did not name the missing return route: exit %d\n%s", code2, out)
	}
	out, _ = e.admin(t, append([]string{"doctor", "--json"}, probes...)...)
	var rep struct {
		Schema   string `json:"schema"`
		Findings []struct {
			ID, Severity, Network string
			Cloud                 []string
		} `json:"findings"`
		Summary struct{ Errors int }
	}
	if json.Unmarshal([]byte(out), &rep) != nil || rep.Schema != "clearpath.doctor/v1" || rep.Summary.Errors != 1 {
		t.Errorf("doctor --json:\n%s", out)
	}
	// Traffic agrees: alice's packets reach vpc-a, its replies do not come back.
	e.unreachable(t, vpcA4, "vpc-a has no route back")
	must(t, e.VPCA.Route("default", lab.GWVPCAIP4))
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("after restoring the route vpc-a saw %q", got)
	}
	// And forwarding off is named with its fix.
	must(t, e.GW.Sysctl("net.ipv4.ip_forward", "0"))
	out, code2 = e.admin(t, append([]string{"doctor"}, probes...)...)
	if code2 != 1 || !strings.Contains(out, "forwarding-off") || !strings.Contains(out, "sysctl -w net.ipv4.ip_forward=1") {
		t.Errorf("doctor with forwarding off: exit %d\n%s", code2, out)
	}
	must(t, e.GW.Sysctl("net.ipv4.ip_forward", "1"))
}
