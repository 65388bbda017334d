package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// TestHostileGatewayCaptureAndLAN: a gateway whose engineering network
// allows everything (0.0.0.0/0, ::/0) and the laptop's own LAN in both
// families, as a careless admin or a compromised gateway would push.
// Without --all-traffic the laptop's internet traffic, its LAN and its
// router stay outside the tunnel, `vpn up` says so in one line naming the
// flag, and status says split tunnel; vpc-a still goes through the
// tunnel. With --all-traffic the user consented: status says full tunnel.
func TestHostileGatewayCaptureAndLAN(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reconfigure(t, e, func(s string) string {
		return strings.Replace(s, `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`"]`,
			`allow: [0.0.0.0/0, "::/0", 10.1.2.0/24, "fd01:2::/64", `+lab.VPCA4+`, "`+lab.VPCA6+`"]`, 1)
	})
	ctx := ctxT(t, 2*time.Minute)
	alice := e.Client("hcap")
	tok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface)
	if err != nil {
		t.Fatalf("vpn up: %v\n%s", err, out)
	}
	t.Logf("vpn up:\n%s", out)
	if !regexp.MustCompile(`notice: .*0\.0\.0\.0/0, ::/0.*--all-traffic`).MatchString(out) {
		t.Errorf("vpn up must say in one line that the default routes were not routed and name --all-traffic:\n%s", out)
	}
	table, _ := e.Laptop.Exec(ctx, "sh", "-c", "ip route show table 7411; ip -6 route show table 7411")
	t.Logf("table 7411:\n%s", table)
	if strings.Contains(table, "default") || strings.Contains(table, "unreachable") {
		t.Errorf("a default route was installed without --all-traffic:\n%s", table)
	}
	for _, dst := range []string{"192.0.2.200", lab.HostLANIP4, "10.1.2.77", "2001:db8:ffff::200", "fd01:2::1", "fd01:2::77"} {
		if r, _ := e.Laptop.Exec(ctx, "ip", "route", "get", dst); strings.Contains(r, "dev "+alice.Iface) {
			t.Errorf("%s goes into the tunnel: %s", dst, r)
		}
	}
	v4, v6 := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s, want the tunnel address %s", got, v4)
	}
	if got := e.reach(t, vpcA6); got != v6.String() {
		t.Errorf("vpc-a (IPv6) saw %s, want %s", got, v6)
	}
	st := status(t, alice)
	if st.FullTunnel {
		t.Errorf("status says full tunnel, but nothing captures all traffic")
	}
	var lanWins []string
	for _, o := range st.Overlaps {
		if o.Winner == "lan" && o.Reason == "connected network" {
			lanWins = append(lanWins, o.Pushed+" "+o.Local)
		}
	}
	if len(lanWins) < 2 {
		t.Errorf("status must name the LAN decisions (both families): %+v", st.Overlaps)
	}
	text, _ := alice.Run(ctx, "status")
	if !strings.Contains(text, "split tunnel") || !strings.Contains(text, "--all-traffic") {
		t.Errorf("vpn status must say split tunnel and keep the notice:\n%s", text)
	}
	down(t, alice)

	if out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface, "--all-traffic"); err != nil {
		t.Fatalf("vpn up --all-traffic: %v\n%s", err, out)
	}
	if st := status(t, alice); !st.FullTunnel || len(st.Notices) != 0 {
		t.Errorf("with --all-traffic status must say full tunnel, no notice: full=%v notices=%v", st.FullTunnel, st.Notices)
	}
	if r, _ := e.Laptop.Exec(ctx, "ip", "route", "get", lab.HostLANIP4); strings.Contains(r, "dev "+alice.Iface) {
		t.Errorf("the LAN router must stay outside even with --all-traffic: %s", r)
	}
	down(t, alice)
}

func status(t *testing.T, c *stack.Client) control.Status {
	t.Helper()
	out, err := c.Run(ctxT(t, 10*time.Second), "status", "--json")
	var st control.Status
	i := strings.Index(out, "{")
	if err != nil || i < 0 || json.Unmarshal([]byte(out[i:]), &st) != nil {
		t.Fatalf("vpn status --json: %v\n%s", err, out)
	}
	return st
}

// TestHostileGatewayRefusalsInstallNothing: a gateway that sends an
// endpoint on the laptop's own loopback (IPv4 and IPv6), or more prefixes
// than the client accepts, is refused with a message naming what was
// wrong, and the laptop's routes, rules and links are as before.
func TestHostileGatewayRefusalsInstallNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 3*time.Minute)
	alice := e.Client("href")
	tok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	snap := t.TempDir() + "/before.json"
	if out, err := alice.Run(ctx, "routes", "snapshot", "-o", snap); err != nil {
		t.Fatal(out)
	}
	refused := func(what, want string, extra ...string) {
		t.Helper()
		args := append([]string{"up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface}, extra...)
		out, err := alice.Run(ctx, args...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: vpn up must fail saying %q: %v\n%s", what, want, err, out)
		} else {
			t.Logf("%s: refused: %s", what, strings.TrimSpace(out))
		}
		if out, err := alice.Run(ctx, "routes", "diff", snap); err != nil || !strings.Contains(out, "no difference") {
			t.Errorf("%s: the refusal left something behind:\n%s", what, out)
		}
		if l, _ := e.Laptop.Exec(ctx, "ip", "link", "show", alice.Iface); strings.Contains(l, alice.Iface+":") {
			t.Errorf("%s: the tunnel link exists: %s", what, l)
		}
	}
	refused("more prefixes than --max-prefixes", "more than the 2 this client accepts", "--max-prefixes", "2")
	endpoint := regexp.MustCompile(`(?m)^endpoint: .*$`)
	for _, ep := range []string{`127.0.0.53`, `"::1"`} {
		reconfigure(t, e, func(s string) string { return endpoint.ReplaceAllString(s, "endpoint: "+ep) })
		refused("endpoint "+ep, "loopback")
	}
}
