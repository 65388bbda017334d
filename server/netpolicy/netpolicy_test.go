package netpolicy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/config"
)

func example(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(config.Example))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDesiredOfExample(t *testing.T) {
	c := example(t)
	var got []string
	for _, ch := range Desired(c.Networks) {
		got = append(got, ch.String())
		switch {
		case ch.Route != nil && ch.Route.Protocol != routes.GatewayProtocol, ch.Rule != nil && ch.Rule.Protocol != routes.GatewayProtocol:
			t.Errorf("%s does not carry protocol 198", ch)
		}
	}
	want := []string{
		"ip addr add 100.64.0.1/24 dev wg-eng",
		"ip addr add fd00:64::1/64 dev wg-eng nodad",
		"ip route add throw 10.10.0.0/16 table 1000 proto 198",
		"ip -6 route add throw fd10:10::/64 table 1000 proto 198",
		"ip route add blackhole 0.0.0.0/0 table 1000 proto 198",
		"ip -6 route add blackhole ::/0 table 1000 proto 198",
		"ip rule add priority 1000",
		"ip -6 rule add priority 1000",
		"ip addr add 100.65.0.1/24 dev wg-ops",
	}
	if len(got) != 16 {
		t.Fatalf("%d changes, want 16:\n%s", len(got), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("change %d = %q, want %q...", i, got[i], w)
		}
	}
	if r := Rules(c.Networks[1])[0]; r.IIF != "wg-ops" || r.Table != 1001 || r.Priority != RulePriority {
		t.Errorf("ops rule %+v", r)
	}
}

// A network allowed everywhere gets a throw default and no blackhole of
// that family.
func TestAllowAllHasNoBlackhole(t *testing.T) {
	n := config.Network{Name: "all", Interface: "wg-all", Table: 1005, Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	rs := Routes(n)
	if len(rs) != 2 || rs[0].Type != routes.TypeThrow || rs[1].Type != routes.TypeBlackhole || rs[1].Dst.Addr().Is4() {
		t.Fatalf("routes %v, want throw 0.0.0.0/0 and blackhole ::/0", rs)
	}
}

func TestCheckTablesNamesForeignRoutes(t *testing.T) {
	c := example(t)
	snap := &routes.Snapshot{Routes: []routes.Route{
		{Table: 1000, Type: routes.TypeThrow, Dst: netip.MustParsePrefix("10.10.0.0/16"), Protocol: routes.GatewayProtocol}, // ours, left by a crash
		{Table: 1001, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.99.0.0/16"), Device: "eth1", Protocol: 4},    // someone's static route
		{Table: 1002, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.98.0.0/16"), Device: "eth1", Protocol: 4},    // not a table of ours
	}}
	err := CheckTables(snap, c.Networks)
	if err == nil {
		t.Fatal("a foreign route in table 1001 was accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "table 1001") || !strings.Contains(msg, "10.99.0.0/16 dev eth1 table 1001 proto 4") || strings.Contains(msg, "1002") || strings.Contains(msg, "table 1000") {
		t.Errorf("error %q should name table 1001 and its route only", msg)
	}
	snap.Routes = snap.Routes[:1]
	if err := CheckTables(snap, c.Networks); err != nil {
		t.Errorf("only the gateway's own routes: %v", err)
	}
}

// What access rules widen to is thrown too (once, however many rules
// name it); what may_widen merely permits is not. A widened default
// replaces the blackhole of its family.
func TestWidenedPrefixesAreThrown(t *testing.T) {
	tg := func(s string) config.AccessTarget {
		x, err := config.ParseAccessTarget(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	n := config.Network{Name: "eng", Interface: "wg-eng", Table: 1000,
		Allow: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/16")}, MayWiden: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16"), netip.MustParsePrefix("::/0")},
		Access: []config.AccessRule{
			{Groups: []string{"dba"}, Allow: []config.AccessTarget{tg("10.10.0.10/32 tcp/5432"), tg("10.99.0.5/32 tcp/22")}},
			{Users: []string{"a@x"}, Allow: []config.AccessTarget{tg("10.99.0.5/32"), tg("::/0 udp/53")}},
		}}
	var got []string
	for _, r := range Routes(n) {
		got = append(got, r.String())
	}
	want := "throw 10.10.0.0/16 table 1000 proto 198|throw 10.99.0.5/32 table 1000 proto 198|throw ::/0 table 1000 proto 198|blackhole 0.0.0.0/0 table 1000 proto 198"
	if s := strings.Join(got, "|"); s != want {
		t.Errorf("routes:\n got %s\nwant %s", s, want)
	}
}
