package config

import (
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/bpf"
)

func TestExampleIsValid(t *testing.T) {
	c, err := Parse([]byte(Example))
	if err != nil {
		t.Fatalf("the example printed by `vpn-gateway init` must load: %v", err)
	}
	if got := c.EndpointFor(c.Networks[0]); got != "vpn.example.com:51820" {
		t.Errorf("endpoint = %q", got)
	}
	if c.Networks[1].Table != DefaultTableBase+1 || c.OIDC.Audience != "clearpath" {
		t.Errorf("defaults not applied: table %d audience %q", c.Networks[1].Table, c.OIDC.Audience)
	}
	if gw := c.Networks[0].GatewayAddrs(); len(gw) != 2 || gw[0].String() != "100.64.0.1/24" || gw[1].String() != "fd00:64::1/64" {
		t.Errorf("gateway addresses = %v", gw)
	}
}

func TestIPv6EndpointIsBracketed(t *testing.T) {
	for _, ep := range []string{"2001:db8::1", "[2001:db8::1]"} {
		c, err := Parse([]byte(strings.Replace(Example, "endpoint: vpn.example.com", "endpoint: \""+ep+"\"", 1)))
		if err != nil {
			t.Fatalf("endpoint %s: %v", ep, err)
		}
		if got := c.EndpointFor(c.Networks[0]); got != "[2001:db8::1]:51820" {
			t.Errorf("endpoint %s -> %q, want [2001:db8::1]:51820", ep, got)
		}
	}
}

// Each broken field must be named in the error, so the operator knows what to fix.
func TestErrorsNameTheField(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{`listen: ":8080"`, `listen: "8080"`, "listen:"},
		{"endpoint: vpn.example.com", "endpoint: vpn.example.com:443", "endpoint:"},
		{"endpoint: vpn.example.com", `endpoint: ""`, "endpoint: required"},
		{"issuer: https://id.example.com/realms/company", "issuer: ftp://x", "oidc.issuer:"},
		{"client_id: clearpath ", "client_id: \"\" ", "oidc.client_id: required"},
		{"key_ttl: 720h", "key_ttl: 5s", "key_ttl:"},
		{"key_ttl: 720h", "key_ttl: 720h\nflows: {filter: maybe}", `flows.filter: "maybe" is not auto, on or off`},
		{"interface: wg-eng", "interface: this-name-is-far-too-long", "networks[0].interface:"},
		{"interface: wg-ops", "interface: wg-eng", "networks[1].interface: \"wg-eng\" is also used by networks[0]"},
		{"listen_port: 51821", "listen_port: 51820", "networks[1].listen_port: 51820 is also used"},
		{"listen_port: 51821", "listen_port: 70000", "networks[1].listen_port: 70000 is not a port"},
		{"pool: [100.65.0.0/24", "pool: [100.64.0.0/25", "networks[1].pool[0]: 100.64.0.0/25 overlaps"},
		{"pool: [100.65.0.0/24", "pool: [100.65.0.1/24", "networks[1].pool[0]: 100.65.0.1/24 has host bits set"},
		{"pool: [100.65.0.0/24", "pool: [100.65.0.0/31", "too small"},
		{`allow: [10.20.0.0/16, "fd10:20::/64"]`, `allow: []`, "networks[1].allow: at least one"},
		{"group: ops", "group: engineering", "networks[1].group: \"engineering\" is also used"},
		{"name: ops", "name: \"o p s\"", "networks[1].name:"},
		{"groups_claim: groups", "groups_claim: realm_access.", "oidc.groups_claim:"},
	}
	for _, c := range cases {
		if !strings.Contains(Example, c.from) {
			t.Fatalf("test case does not match the example: %q", c.from)
		}
		_, err := Parse([]byte(strings.Replace(Example, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: error %v, want it to contain %q", c.from, c.to, err, c.want)
		}
	}
}

func TestRejectsUnknownFieldsAndBadPrefixes(t *testing.T) {
	if _, err := Parse([]byte(Example + "\nlisten_adress: x\n")); err == nil || !strings.Contains(err.Error(), "listen_adress") {
		t.Errorf("a typo must be an error naming it, got %v", err)
	}
	bad := strings.Replace(Example, "allow: [10.10.0.0/16", "allow: [10.10.0.0/33", 1)
	if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "10.10.0.0/33") {
		t.Errorf("bad prefix must be named, got %v", err)
	}
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty config: %v", err)
	}
	if _, err := Parse([]byte("networks: []\n")); err == nil || !strings.Contains(err.Error(), "networks: at least one") {
		t.Errorf("no networks: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(Example))
	f.Add([]byte("networks: [{name: a, pool: [1.2.3.0/24]}]"))
	f.Add([]byte("endpoint: \"[::1\""))
	f.Add([]byte(withAccess("    may_widen: [10.99.0.0/16]\n    access:\n      - groups: [dba]\n        users: [a@x]\n        allow: [\"10.10.0.10/32 tcp/5432 udp/53,icmp\", \"10.99.0.0/24 tcp/1-1024\"]")))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil {
			// Whatever loads must be fully valid and usable.
			if c.Validate() != nil || len(c.Networks) == 0 || !c.Networks[0].Pool4().IsValid() {
				t.Fatalf("accepted an invalid config: %+v", c)
			}
			_ = c.EndpointFor(c.Networks[0])
			// Access rules that load give every user a policy the filter
			// takes: valid ports, at most MaxPortRanges per prefix, and
			// nothing outside allow but what may_widen permits.
			for _, n := range c.Networks {
				var groups []string
				for _, r := range n.Access {
					groups = append(groups, r.Groups...)
				}
				p := n.PolicyFor("fuzz-subject", "", groups)
				for _, a := range bpf.FoldPolicy(p.Allows()) {
					if len(a.Ports) > MaxPortRanges {
						t.Fatalf("%s: %d port ranges on %s", n.Name, len(a.Ports), a.Prefix)
					}
					for _, r := range a.Ports {
						if r.Proto != bpf.ProtoICMP && (r.Lo == 0 || r.Lo > r.Hi) {
							t.Fatalf("%s: bad range %+v", n.Name, r)
						}
					}
				}
				for _, g := range p.Grants {
					if g.Widen && !within(n.MayWiden, g.Target.Prefix) {
						t.Fatalf("%s: %s widens beyond may_widen %v", n.Name, g.Target, n.MayWiden)
					}
				}
			}
		}
	})
}

// DSN passwords and webhook URLs never reach printed text: validation
// errors (vpn-gateway check), reload errors, logs.
func TestRedaction(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://cp:s3cret@db:5432/cp?sslmode=require":       "postgres://cp:xxxxx@db:5432/cp?sslmode=require",
		"postgresql://cp@db/cp?password=s3cret&sslmode=disable": "postgresql://cp@db/cp?password=xxxxx&sslmode=disable",
		"/var/lib/clearpath-gateway/gateway.db":                 "/var/lib/clearpath-gateway/gateway.db",
		"postgres://cp:s3cret@db:5432/%zz":                      "postgres://(unparsable DSN hidden)",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RedactURL("https://hooks.example.org/services/T0/B0/s3cret?token=s3cret"); got != "https://hooks.example.org/…" {
		t.Errorf("RedactURL = %q", got)
	}
	bad := strings.Replace(Example, "store: /var/lib/clearpath-gateway/gateway.db", "store: postgres://cp:s3cret@db:5432/%zz", 1)
	bad = strings.Replace(bad, "# lifecycle:\n", "lifecycle:\n  webhook:\n    url: ftp://hooks.example.org/s3cret\n", 1)
	_, err := Parse([]byte(bad))
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "store: bad PostgreSQL DSN") || !strings.Contains(err.Error(), "lifecycle.webhook.url") {
		t.Fatalf("validation errors must name the fields without the secrets: %v", err)
	}
}

func TestFlowsTableSettings(t *testing.T) {
	c, err := Parse([]byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	if c.Flows.UserFlows != DefaultFlowsPerUser || c.Flows.TableMax != DefaultFlowTableMax || c.Flows.Unparsed != FlowUnparsedDrop {
		t.Errorf("flows defaults = %+v", c.Flows)
	}
	c, err = Parse([]byte(strings.Replace(Example, "key_ttl: 720h", "key_ttl: 720h\nflows: {user_flows: 100, table_max: 5000, unparsed: allow}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Flows.UserFlows != 100 || c.Flows.TableMax != 5000 || c.Flows.Unparsed != FlowUnparsedAllow {
		t.Errorf("flows = %+v", c.Flows)
	}
	for _, c := range []struct{ flows, want string }{
		{"{user_flows: 8}", "flows.user_flows: 8 is outside 16-"},
		{"{user_flows: 4096, table_max: 100}", "flows.table_max: 100 is outside flows.user_flows (4096)"},
		{"{unparsed: pass}", `flows.unparsed: "pass" is not drop or allow`},
	} {
		_, err := Parse([]byte(strings.Replace(Example, "key_ttl: 720h", "key_ttl: 720h\nflows: "+c.flows, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("flows: %s: error %v, want %q", c.flows, err, c.want)
		}
	}
}
