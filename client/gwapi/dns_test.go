package gwapi

import (
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/api"
)

func TestValidateDNS(t *testing.T) {
	base := func() *api.PeerConfig {
		return &api.PeerConfig{DNS: []string{"10.10.0.2", "100.64.0.1"}, DNSDomains: []string{"Corp.Internal."},
			Gateway: api.GatewayPeer{AllowedIPs: []string{"10.10.0.0/16", "100.64.0.1/32"}}}
	}
	d, err := ValidateDNS(base())
	if err != nil || len(d.Servers) != 2 || d.Domains[0] != "corp.internal" {
		t.Fatalf("ValidateDNS = %+v, %v", d, err)
	}
	// An old gateway: nothing.
	if d, err := ValidateDNS(&api.PeerConfig{DNS: []string{}}); err != nil || d.Servers != nil {
		t.Errorf("no DNS: %+v, %v", d, err)
	}
	cases := []struct {
		mod  func(*api.PeerConfig)
		want string
	}{
		{func(p *api.PeerConfig) { p.DNS = []string{"192.168.1.1"} }, `dns[0]: 192.168.1.1 is not inside gateway.allowed_ips`},
		{func(p *api.PeerConfig) {
			p.Gateway.AllowedIPs = append(p.Gateway.AllowedIPs, "0.0.0.0/0")
			p.DNS = []string{"8.8.8.8"}
		}, `dns[0]: 8.8.8.8 is not inside`},
		{func(p *api.PeerConfig) { p.DNS = []string{"127.0.0.1"} }, `dns[0]: 127.0.0.1 is not a unicast address inside the tunnel`},
		{func(p *api.PeerConfig) { p.DNS = []string{"x"} }, `dns[0]: "x" is not an address`},
		{func(p *api.PeerConfig) { p.DNS = nil }, `dns_domains: 1 routing domains but no dns server`},
		{func(p *api.PeerConfig) { p.DNSDomains = []string{"ok.example", "bad\u202e.example"} }, `dns_domains[1]: "bad\u202e.example"`},
		{func(p *api.PeerConfig) { p.DNSDomains = []string{"."} }, `dns_domains[0]: "." is the root zone`},
		{func(p *api.PeerConfig) { p.DNS = make([]string, 9) }, `dns: 9 servers, more than 8`},
	}
	for i, c := range cases {
		p := base()
		c.mod(p)
		_, err := ValidateDNS(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: got %v, want %q", i, err, c.want)
		}
	}
}
