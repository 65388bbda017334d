package splitdns

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

func TestDiagnose(t *testing.T) {
	ours := Content([]byte(before), StubAddr)
	j := &Journal{Path: "/etc/resolv.conf", Before: []byte(before), Ours: ours, PID: 42, At: time.Unix(0, 0)}
	ids := func(fs []analysis.Finding) (out []string) {
		for _, f := range fs {
			out = append(out, f.ID)
		}
		return out
	}
	cases := []struct {
		name string
		in   DoctorInput
		want []string
		fix  bool
	}{
		{"healthy, no VPN", DoctorInput{ResolvConf: []byte(before)}, nil, false},
		{"live session", DoctorInput{ResolvConf: ours, Journal: j, AgentStub: true, StubAnswered: true}, nil, false},
		{"killed agent, journal", DoctorInput{ResolvConf: ours, Journal: j}, []string{FindingStubOrphaned}, true},
		{"stub, no journal", DoctorInput{ResolvConf: ours}, []string{FindingStubOrphaned}, false},
		{"journal, file changed", DoctorInput{ResolvConf: []byte("nameserver 9.9.9.9\n"), Journal: j}, []string{FindingJournalLeft}, true},
		{"tunnel DNS silent", DoctorInput{ResolvConf: ours, Journal: j, AgentStub: true, Unreachable: []string{"10.10.0.10"}}, []string{FindingTunnelDNS}, false},
	}
	for _, c := range cases {
		got := Diagnose(c.in)
		if len(got) != len(c.want) || len(got) > 0 && got[0].ID != c.want[0] {
			t.Errorf("%s: findings %v, want %v", c.name, ids(got), c.want)
			continue
		}
		for _, f := range got {
			if RestoreFixable(f) != c.fix || len(f.Evidence) == 0 || f.Explanation == "" {
				t.Errorf("%s: %s fixable=%v (want %v), evidence %v", c.name, f.ID, RestoreFixable(f), c.fix, f.Evidence)
			}
		}
	}
}

// With all traffic captured, a resolver routed out of another device is a
// leak (evidence: the resolver, its role and the route); one routed into
// the tunnel, the stub on loopback, or a split tunnel is not.
func TestDiagnoseLeak(t *testing.T) {
	lan := ResolverRoute{Addr: netip.MustParseAddr("192.168.1.1"), Role: "resolv.conf nameserver", Device: "eth0", Route: "192.168.1.0/24 dev eth0"}
	tun := ResolverRoute{Addr: netip.MustParseAddr("10.10.0.10"), Role: "tunnel server", Device: "wg0", Route: "0.0.0.0/1 dev wg0"}
	stub := ResolverRoute{Addr: StubAddr, Role: "resolv.conf nameserver", Device: "lo", Route: "local 127.0.0.0/8 dev lo"}
	// fix: only a resolv.conf rewritten away from a running stub has one
	// (the agent re-points it); the gateway's DNS config has none.
	cases := []struct {
		name      string
		in        DoctorInput
		leak, fix bool
	}{
		{"rewritten resolv.conf", DoctorInput{FullTunnel: true, TunnelDev: "wg0", AgentStub: true, ResolvConf: []byte("nameserver 192.168.1.1\n"), Resolvers: []ResolverRoute{lan}}, true, true},
		{"stub upstream on the LAN", DoctorInput{FullTunnel: true, TunnelDev: "wg0", AgentStub: true, ResolvConf: Content(nil, StubAddr), Resolvers: []ResolverRoute{stub, tun, lan}}, true, false},
		{"gateway pushed no servers", DoctorInput{FullTunnel: true, TunnelDev: "wg0", ResolvConf: []byte("nameserver 192.168.1.1\n"), Resolvers: []ResolverRoute{lan}}, true, false},
		{"all through the tunnel", DoctorInput{FullTunnel: true, TunnelDev: "wg0", AgentStub: true, ResolvConf: Content(nil, StubAddr), Resolvers: []ResolverRoute{stub, tun}}, false, false},
		{"split tunnel", DoctorInput{TunnelDev: "wg0", ResolvConf: []byte("nameserver 192.168.1.1\n"), Resolvers: []ResolverRoute{lan}}, false, false},
		{"unroutable: dns-unroutable's", DoctorInput{FullTunnel: true, TunnelDev: "wg0", Resolvers: []ResolverRoute{{Addr: lan.Addr, Refused: true}}}, false, false},
	}
	for _, c := range cases {
		fs := Diagnose(c.in)
		got := len(fs) == 1 && fs[0].ID == FindingLeak
		if got != c.leak || !c.leak && len(fs) != 0 {
			t.Errorf("%s: findings %+v, leak want %v", c.name, fs, c.leak)
			continue
		}
		if got && (!strings.Contains(fs[0].Title, "eth0") || !strings.Contains(fs[0].Evidence[1].Text, "192.168.1.1") || !strings.Contains(fs[0].Evidence[1].Text, "dev eth0") || len(fs[0].Commands) == 0) {
			t.Errorf("%s: evidence %+v", c.name, fs[0])
		}
		if got && (RepointFixable(fs[0]) != c.fix || RestoreFixable(fs[0])) {
			t.Errorf("%s: repoint-fixable %v (want %v), restore-fixable %v", c.name, RepointFixable(fs[0]), c.fix, RestoreFixable(fs[0]))
		}
		if got && !c.fix && !strings.Contains(fs[0].Explanation, "No --fix") {
			t.Errorf("%s: no fix, and the explanation does not say why: %s", c.name, fs[0].Explanation)
		}
	}
}

// A nameserver listed ahead of our stub takes every name: a conflict with
// each routing domain; one listed after it, or no stub, is not.
func TestStubClaims(t *testing.T) {
	in := DoctorInput{Domains: []string{"corp.internal"}, Servers: []string{"10.10.0.10"}}
	in.Claims = StubClaims("/etc/resolv.conf", []byte("nameserver 10.8.0.1\nnameserver 127.0.74.11\nnameserver 9.9.9.9\n"))
	fs := Diagnose(in)
	if len(fs) != 1 || fs[0].ID != FindingConflict || !strings.Contains(fs[0].Evidence[0].Text, "10.8.0.1") {
		t.Fatalf("findings %+v", fs)
	}
	for _, conf := range []string{"nameserver 127.0.74.11\nnameserver 9.9.9.9\n", "nameserver 9.9.9.9\n"} {
		if c := StubClaims("/etc/resolv.conf", []byte(conf)); len(c) != 0 {
			t.Errorf("%q: claims %v", conf, c)
		}
	}
	if !overlaps("~Corp.Internal.", "eng.corp.internal") || overlaps("corp.internal", "notcorp.internal") {
		t.Error("overlaps: subdomain or case handling wrong")
	}
}
