package gwdoctor

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

var (
	P = netip.MustParsePrefix
	A = netip.MustParseAddr
)

// The gateway's report is the client's schema: same type, same JSON names,
// plus network and cloud.
func TestReportSchema(t *testing.T) {
	ok := finding("forwarding-on", analysis.OK, "", "net.ipv4.ip_forward = 1")
	bad := finding("no-return-route", analysis.Error, "eng", "10.10.0.10 answers the gateway but not the pool", "ping 10.10.0.10 from 100.64.0.1: no reply")
	bad.Cloud = []string{"destination 100.64.0.0/24 -> target this gateway"}
	walk := analysis.Walk(&routes.Snapshot{OS: "linux", Rules: []routes.Rule{{Priority: 1000, IIF: "cp-eng", Table: 1000, Action: "lookup", SuppressPrefixLen: -1}},
		Routes: []routes.Route{{Table: 1000, Type: routes.TypeBlackhole, Dst: P("0.0.0.0/0")}}}, analysis.Flow{Dst: A("8.8.8.8"), Src: A("100.64.0.2"), IIF: "cp-eng"})
	leak := finding("policy-leak", analysis.Error, "eng", "example")
	leak.Evidence = stepsEvidence(walk)
	leak.Commands = []string{"ip route add blackhole default table 1000"}
	rep := analysis.NewReport("linux", []analysis.Finding{ok, bad, leak})
	if rep.Summary.Errors != 2 || rep.Summary.Passed != 1 || rep.Summary.Healthy || rep.ExitCode() != 1 {
		t.Errorf("summary %+v", rep.Summary)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back analysis.Report
	if err := json.Unmarshal(b, &back); err != nil || back.Schema != "clearpath.doctor/v1" || back.Findings[1].Network != "eng" || back.Findings[1].Cloud[0] == "" ||
		back.Findings[2].Evidence[0].Kind != "step" || back.Findings[2].Evidence[0].Rule == nil || back.Findings[2].Evidence[0].Route == nil {
		t.Errorf("round trip: %v\n%s", err, b)
	}
	for _, want := range []string{`"passed":1`, `"network":"eng"`, `"cloud":[`, `"commands":[`, `"severity":"ok"`, `"owner":"clearpath"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	text := Text(rep)
	for _, want := range []string{"ok   net.ipv4.ip_forward = 1 (forwarding-on)", "FAIL [eng] 10.10.0.10", "       ping 10.10.0.10", "       add: destination", "       fix: ip route add blackhole",
		"1000: from all iif cp-eng lookup 1000 -> blackhole 0.0.0.0/0 table 1000: decides", "2 errors, 0 warnings."} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}
