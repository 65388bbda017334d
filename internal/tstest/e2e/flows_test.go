package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// The gateway's eBPF filter logs every flow with the user who made it: after
// alice reaches vpc-a, the flow log (written when the gateway stops) names
// her, her tunnel address, the destination and what crossed.
func TestFlowLogNamesTheUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("flows")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	v4, _ := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Fatalf("vpc-a saw %s, want %s", got, v4)
	}
	if !strings.Contains(e.Gateway.Log(), "per-user flow filter on") {
		t.Fatalf("the gateway did not load its flow filter:\n%s", e.Gateway.Log())
	}
	// Per-user flow-table figures on /metrics (metrics_listen, in gw).
	resp, err := e.GW.HTTPClient(5 * time.Second).Get(gatewayMetricsURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	mbody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`clearpath_flow_evictions_total{user="alice@example.com"} 0`, `clearpath_flow_unparsed_packets_total{user="alice@example.com"} 0`, `clearpath_flows{user="alice@example.com"}`} {
		if !strings.Contains(string(mbody), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	down(t, alice)
	e.StopGateway() // writes the flows still open

	f, err := os.Open(filepath.Join(filepath.Dir(e.GatewayConfig), "gateway-state", "flows.jsonl"))
	if err != nil {
		t.Fatalf("flow log: %v", err)
	}
	defer f.Close()
	var seen []string
	for r, err := range bpf.ReadFlowLog(f) {
		if err != nil {
			t.Fatalf("flow log: %v", err)
		}
		seen = append(seen, r.User+" "+r.Proto+" "+r.Src+" -> "+r.Dst)
		if r.User == "alice@example.com" && r.Proto == "tcp" && r.Src == v4.String() && r.Dst == lab.VPCAIP4 &&
			r.DstPort != nil && *r.DstPort == 8000 && r.Packets > 0 && r.ReplyPackets > 0 {
			t.Logf("flow of alice: %d packets, %d bytes out, %d packets back", r.Packets, r.Bytes, r.ReplyPackets)
			return
		}
	}
	t.Fatalf("no flow of alice to %s:8000 in the flow log; it has:\n%s", lab.VPCAIP4, strings.Join(seen, "\n"))
}
