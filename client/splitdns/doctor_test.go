package splitdns

import (
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
