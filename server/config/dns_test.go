package config

import (
	"slices"
	"strings"
	"testing"
)

func withEngDNS(extra string) string {
	return strings.Replace(Example, "    # table: 1000", extra+"\n    # table: 1000", 1)
}

func TestDNSParsed(t *testing.T) {
	c, err := Parse([]byte(withEngDNS("    dns: {servers: [10.10.0.2, \"fd10:10::53\"], domains: [Corp.Internal., db.example.com]}")))
	if err != nil {
		t.Fatal(err)
	}
	servers, domains := c.Networks[0].PushedDNS()
	if !slices.Equal(servers, []string{"10.10.0.2", "fd10:10::53"}) || !slices.Equal(domains, []string{"corp.internal", "db.example.com"}) {
		t.Errorf("PushedDNS = %v %v", servers, domains)
	}
	if s, d := c.Networks[1].PushedDNS(); s != nil || d != nil {
		t.Errorf("ops has no dns, got %v %v", s, d)
	}
	// The gateway's own tunnel address is fine once udp/53 is open on it.
	if _, err := Parse([]byte(withEngDNS("    local_ports: [udp/53, tcp/53]\n    dns: {servers: [100.64.0.1], domains: []}"))); err != nil {
		t.Errorf("gateway address with udp/53 open: %v", err)
	}
}

// A bad entry is named by its field and index and says what is wrong.
func TestDNSErrorsNameTheField(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"    dns: {servers: [192.168.1.1], domains: [corp.internal]}", `networks[0].dns.servers[0]: 192.168.1.1 is outside the network's allow list`},
		{"    dns: {servers: [100.64.0.1], domains: [corp.internal]}", `networks[0].dns.servers[0]: 100.64.0.1 is the gateway's own tunnel address, but local_ports does not open udp/53`},
		{"    local_ports: [tcp/53]\n    dns: {servers: [100.64.0.1]}", `networks[0].dns.servers[0]: 100.64.0.1 is the gateway's own tunnel address, but local_ports does not open udp/53`},
		{"    dns: {servers: [100.64.0.7]}", `networks[0].dns.servers[0]: 100.64.0.7 is outside the network's allow list`},
		{"    dns: {servers: [127.0.0.1]}", `networks[0].dns.servers[0]: 127.0.0.1 is not a unicast address`},
		{"    dns: {servers: [], domains: [corp.internal]}", `networks[0].dns.servers: at least one server is required`},
		{"    dns: {servers: [10.10.0.2], domains: [\".\"]}", `networks[0].dns.domains[0]: "." is the root zone`},
		{"    dns: {servers: [10.10.0.2], domains: [\"*.corp\"]}", `networks[0].dns.domains[0]: "*.corp": label "*" holds '*'`},
		{"    dns: {servers: [10.10.0.2], domains: [a..b]}", `networks[0].dns.domains[0]: "a..b" has an empty label`},
		{"    dns: {servers: [10.10.0.2], domains: [corp.internal, CORP.internal.]}", `networks[0].dns.domains[1]: "CORP.internal." is listed twice (also dns.domains[0])`},
		{"    dns: {servers: [nope]}", `nope`},
		{"    dns: {server: [10.10.0.2]}", `networks[0].dns.server (line 87): unknown field`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(withEngDNS(c.yaml)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant an error containing %q", c.yaml, err, c.want)
		}
	}
}
