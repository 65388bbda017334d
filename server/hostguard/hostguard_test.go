package hostguard

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/config"
)

const testConfig = `listen: "198.51.100.1:8080"
endpoint: 198.51.100.1
oidc: {issuer: "http://192.0.2.10:5556/dex", client_id: clearpath, allow_http: true}
networks:
  - name: eng
    group: engineering
    interface: wg-eng
    listen_port: 51820
    pool: [100.64.0.0/24, "fd00:64::/64"]
    allow: [10.10.0.0/16, "fd10:10::/64"]
    local_ports: [udp/53, tcp/53]
  - name: ops
    group: ops
    interface: wg-ops
    listen_port: 51821
    pool: [100.65.0.0/24]
    allow: [10.20.0.0/16]
`

func parse(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func lines(rs []Rule) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

// The configuration's networks become, per interface: ping to its own
// tunnel addresses, the API port, its local_ports, then a drop of every
// other packet to the host.
func TestPlanFromConfig(t *testing.T) {
	got := lines(Plan(FromConfig(parse(t, testConfig))))
	want := `iifname "wg-eng" ip daddr 100.64.0.1 icmp type echo-request accept comment "eng: ping to the tunnel address (vpn up's probe)"
iifname "wg-eng" ip6 daddr fd00:64::1 icmpv6 type echo-request accept comment "eng: ping to the tunnel address (vpn up's probe)"
iifname "wg-eng" ip daddr 198.51.100.1 tcp dport 8080 accept comment "eng: registration API (full-tunnel clients renew through the tunnel)"
iifname "wg-eng" udp dport 53 accept comment "eng: local_ports udp/53"
iifname "wg-eng" tcp dport 53 accept comment "eng: local_ports tcp/53"
iifname "wg-eng" counter drop comment "eng: the gateway host is closed to the tunnel"
iifname "wg-ops" ip daddr 100.65.0.1 icmp type echo-request accept comment "ops: ping to the tunnel address (vpn up's probe)"
iifname "wg-ops" ip daddr 198.51.100.1 tcp dport 8080 accept comment "ops: registration API (full-tunnel clients renew through the tunnel)"
iifname "wg-ops" counter drop comment "ops: the gateway host is closed to the tunnel"
`
	if got != want {
		t.Errorf("rules:\n%s\nwant:\n%s", got, want)
	}
}

// Every network's last rule drops everything from its interface, and no
// accept comes after a drop of the same interface.
func TestEveryInterfaceEndsInADrop(t *testing.T) {
	rs := Plan(FromConfig(parse(t, testConfig)))
	last := map[string]Rule{}
	dropped := map[string]bool{}
	for _, r := range rs {
		if dropped[r.Iface] {
			t.Errorf("%s comes after the drop of %s", r, r.Iface)
		}
		if r.Drop && (r.Daddr.IsValid() || r.Proto != "") {
			t.Errorf("the drop must match every packet of the interface: %s", r)
		}
		dropped[r.Iface] = r.Drop
		last[r.Iface] = r
	}
	if len(last) != 2 || !last["wg-eng"].Drop || !last["wg-ops"].Drop {
		t.Errorf("last rules: %v", last)
	}
}

func TestAPIAddress(t *testing.T) {
	cases := []struct {
		listen, addr string // addr "" = every address
		port         uint16 // 0 = no rule
	}{
		{"198.51.100.1:8080", "198.51.100.1", 8080},
		{"[2001:db8::1]:443", "2001:db8::1", 443},
		{":8080", "", 8080},
		{"[::]:443", "", 443},
		{"0.0.0.0:443", "", 443},
		{"gw.example:8080", "", 8080}, // a host name: every address
		{"127.0.0.1:8080", "", 0},     // loopback: unreachable from a tunnel anyway
		{"[::1]:8080", "", 0},
		{"8080", "", 0},
	}
	for _, c := range cases {
		got := apiAddr(c.listen)
		addr := ""
		if got.Addr().IsValid() {
			addr = got.Addr().String()
		}
		if addr != c.addr || got.Port() != c.port {
			t.Errorf("apiAddr(%q) = %q port %d, want %q port %d", c.listen, addr, got.Port(), c.addr, c.port)
		}
	}
	// Any address: the rule has no daddr; loopback: no rule.
	c := parse(t, strings.Replace(testConfig, `listen: "198.51.100.1:8080"`, `listen: ":8080"`, 1))
	if got := lines(Plan(FromConfig(c))); !strings.Contains(got, `iifname "wg-eng" tcp dport 8080 accept`) {
		t.Errorf("listen :8080 must open 8080 at every address:\n%s", got)
	}
	c = parse(t, strings.Replace(testConfig, `listen: "198.51.100.1:8080"`, `listen: "127.0.0.1:8080"`, 1))
	if got := lines(Plan(FromConfig(c))); strings.Contains(got, "8080") {
		t.Errorf("a loopback API needs no rule:\n%s", got)
	}
}

// While a reload changes the networks, the merged spec keeps every
// interface of either side closed and opens only what both open.
func TestMergeKeepsTheTransitionClosed(t *testing.T) {
	ap := netip.MustParseAddrPort("198.51.100.1:8080")
	p := func(s string) config.LocalPort {
		lp, err := config.ParseLocalPort(s)
		if err != nil {
			t.Fatal(err)
		}
		return lp
	}
	a4, b4 := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.66.0.1")
	cur := Spec{API: ap, Networks: []Network{
		{Name: "eng", Interface: "wg-eng", TunnelAddrs: []netip.Addr{a4}, Ports: []config.LocalPort{p("udp/53"), p("tcp/53")}},
		{Name: "old", Interface: "wg-old", TunnelAddrs: []netip.Addr{b4}},
	}}
	next := Spec{API: ap, Networks: []Network{
		{Name: "eng", Interface: "wg-eng", TunnelAddrs: []netip.Addr{a4}, Ports: []config.LocalPort{p("udp/53"), p("tcp/8443")}},
		{Name: "new", Interface: "wg-new"},
	}}
	got := lines(Plan(Merge(cur, next)))
	for _, want := range []string{
		`iifname "wg-eng" udp dport 53 accept`,
		`iifname "wg-eng" counter drop`,
		`iifname "wg-old" counter drop`,
		`iifname "wg-new" counter drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("merged rules lack %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"tcp dport 53 ", "tcp dport 8443"} {
		if strings.Contains(got, bad) {
			t.Errorf("merged rules open %q, which one side closes:\n%s", bad, got)
		}
	}
	if m := Merge(cur, Spec{Networks: next.Networks}); m.API.IsValid() {
		t.Errorf("an API that differs must be closed during the transition: %v", m.API)
	}
}

// Local walks the same rules the kernel runs: explain and the table agree.
func TestLocalVerdicts(t *testing.T) {
	s := FromConfig(parse(t, testConfig))
	cases := []struct {
		iface, dst string
		port       int
		ok         bool
		rule       string
	}{
		{"wg-eng", "100.64.0.1", 0, true, "icmp type echo-request"},
		{"wg-eng", "fd00:64::1", 0, true, "icmpv6 type echo-request"},
		{"wg-eng", "100.65.0.1", 0, false, "counter drop"}, // ops's tunnel address
		{"wg-eng", "10.10.0.1", 0, false, "counter drop"},
		{"wg-eng", "10.10.0.1", 22, false, "counter drop"},
		{"wg-eng", "198.51.100.1", 8080, true, "tcp dport 8080"},
		{"wg-eng", "10.10.0.1", 8080, false, "counter drop"}, // the API listens on 198.51.100.1 only
		{"wg-eng", "10.10.0.1", 53, true, "udp dport 53"},
		{"wg-ops", "100.65.0.1", 53, false, "counter drop"},
		{"wg-ops", "100.65.0.1", 0, true, "icmp type echo-request"},
	}
	for _, c := range cases {
		ok, why := s.Local(c.iface, netip.MustParseAddr(c.dst), c.port)
		if ok != c.ok || !strings.Contains(why, c.rule) {
			t.Errorf("%s -> %s port %d: %v %q, want %v by %q", c.iface, c.dst, c.port, ok, why, c.ok, c.rule)
		}
	}
}

// Compare tells doctor how the live chain differs from the configuration.
func TestCompare(t *testing.T) {
	s := FromConfig(parse(t, testConfig))
	var live []LiveRule
	for _, r := range Plan(s) {
		live = append(live, LiveRule{Comment: r.Comment, Drop: r.Drop})
	}
	if d := Compare(s, live); len(d) != 0 {
		t.Errorf("the planned rules differ from themselves: %v", d)
	}
	// The file gained a port without a reload; someone removed ops's drop.
	c := parse(t, strings.Replace(testConfig, "[udp/53, tcp/53]", "[udp/53, tcp/53, tcp/853]", 1))
	d := Compare(FromConfig(c), live[:len(live)-1])
	if len(d) == 0 || !strings.Contains(strings.Join(d, "\n"), "local_ports tcp/853") || !strings.Contains(strings.Join(d, "\n"), "missing rule") {
		t.Errorf("differences: %v", d)
	}
}
