package gateway

import (
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/config"
)

func mustParse(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPlanReload(t *testing.T) {
	cur := mustParse(t, config.Example)
	ops := "  - name: ops\n    group: ops\n    interface: wg-ops\n    listen_port: 51821\n    pool: [100.65.0.0/24, \"fd00:65::/64\"]\n    allow: [10.20.0.0/16, \"fd10:20::/64\"]\n"
	qa := "  - name: qa\n    group: qa\n    interface: wg-qa\n    listen_port: 51822\n    pool: [100.66.0.0/24]\n    allow: [10.30.0.0/16]\n"
	cases := []struct {
		name, doc string
		want      []string // "op network details..."
		settings  []string
		err       string
	}{
		{"nothing", config.Example, nil, nil, ""},
		{"remove ops, add qa (qa takes table 1001)", strings.Replace(config.Example, ops, qa, 1), []string{"remove ops", "add qa"}, nil, ""},
		{"allow list", strings.Replace(config.Example, `allow: [10.10.0.0/16, "fd10:10::/64"]`, `allow: [10.10.0.0/16, 10.11.0.0/16]`, 1),
			[]string{"update eng allow +10.11.0.0/16 allow -fd10:10::/64"}, nil, ""},
		{"local_ports change in place", strings.Replace(config.Example, `allow: [10.20.0.0/16, "fd10:20::/64"]`, `allow: [10.20.0.0/16, "fd10:20::/64"]`+"\n    local_ports: [udp/53]", 1),
			[]string{"update ops local_ports [] -> [udp/53]"}, nil, ""},
		{"dns change in place", strings.Replace(config.Example, `allow: [10.20.0.0/16, "fd10:20::/64"]`, `allow: [10.20.0.0/16, "fd10:20::/64"]`+"\n    dns: {servers: [10.20.0.2], domains: [ops.internal]}", 1),
			[]string{"update ops dns [] [] -> [10.20.0.2] [ops.internal] (clients get it when they next register)"}, nil, ""},
		{"port means a new device", strings.Replace(config.Example, "listen_port: 51821", "listen_port: 51829", 1), []string{"recreate ops listen_port 51821 -> 51829"}, nil, ""},
		{"settings", strings.Replace(config.Example, "key_ttl: 720h", "key_ttl: 24h", 1), nil, []string{"key_ttl", "lifecycle"}, ""},
		{"pool", strings.Replace(config.Example, "pool: [100.65.0.0/24", "pool: [100.99.0.0/24", 1), nil, nil, "networks[1].pool: the pool of running network ops cannot change"},
		{"listen", strings.Replace(config.Example, `listen: ":8080"`, `listen: ":9090"`, 1), nil, nil, "listen: changing it needs a restart"},
		{"admin group", config.Example + "\nadmin_group: ops\n", nil, nil, "admin_group: changing it needs a restart"},
		{"issuer", strings.Replace(config.Example, "issuer: https://id.example.com/realms/company", "issuer: https://other.example.com", 1), nil, nil, "oidc.issuer: changing it needs a restart"},
		{"tls mode", strings.Replace(config.Example, "key_ttl: 720h", "key_ttl: 720h\ntls: {acme: {domains: [vpn.example.com], accept_tos: true}}", 1), nil, nil, "tls: switching from plain HTTP to ACME needs a restart"},
		{"table swap", strings.Replace(strings.Replace(config.Example, "    # table: 1000        # policy routing table (default 1000 + position)\n", "    table: 1001\n", 1), "    allow: [10.20.0.0/16, \"fd10:20::/64\"]\n", "    allow: [10.20.0.0/16, \"fd10:20::/64\"]\n    table: 1000\n", 1),
			nil, nil, "networks[0].table: 1001 is still used by running network ops"},
	}
	for _, c := range cases {
		next := mustParse(t, c.doc)
		changes, settings, err := planReload(cur, next)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got []string
		for _, ch := range changes {
			name := ch.new.Name
			if ch.op == "remove" {
				name = ch.old.Name
			}
			s := ch.op + " " + name
			if ch.op != "add" {
				for _, d := range ch.details {
					s += " " + d
				}
			}
			got = append(got, s)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") || strings.Join(settings, ",") != strings.Join(c.settings, ",") {
			t.Errorf("%s: changes %q settings %q, want %q %q", c.name, got, settings, c.want, c.settings)
		}
	}
}
