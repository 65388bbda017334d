package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// logrotate's way with the real gateway and its flow log: the file is
// moved aside and the gateway gets SIGUSR1 (packaging/logrotate's
// postrotate). It reopens the log at its path, keeps serving, does not
// reload its configuration, and the flows written afterwards (alice's,
// flushed at stop) are in the new file, not in the moved one.
func TestFlowLogReopensAfterRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("rotate")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	if !strings.Contains(e.Gateway.Log(), "per-user flow filter on") {
		t.Skipf("the gateway runs without its flow filter here:\n%s", e.Gateway.Log())
	}
	flows := filepath.Join(filepath.Dir(e.GatewayConfig), "gateway-state", "flows.jsonl")
	if err := os.Rename(flows, flows+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(e.Gateway.Pid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, err := os.Stat(flows); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no new flow log at %s 10 s after SIGUSR1:\n%s", flows, e.Gateway.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("flow log reopened %s after SIGUSR1", time.Since(start).Round(time.Millisecond))
	v4, _ := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Fatalf("after SIGUSR1 vpc-a saw %s, want %s", got, v4)
	}
	if log := e.Gateway.Log(); strings.Contains(log, "configuration reloaded") || strings.Contains(log, "reload failed") {
		t.Errorf("SIGUSR1 reloaded the configuration:\n%s", log)
	}
	down(t, alice)
	e.StopGateway() // writes the flows still open

	users := func(path string) []string {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var seen []string
		for r, err := range bpf.ReadFlowLog(f) {
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if r.User == "alice@example.com" && r.Dst == lab.VPCAIP4 {
				seen = append(seen, r.Src+" -> "+r.Dst)
			}
		}
		return seen
	}
	if got := users(flows); len(got) == 0 {
		t.Errorf("the new flow log has no flow of alice to vpc-a")
	}
	if got := users(flows + ".1"); len(got) != 0 {
		t.Errorf("the moved flow log got flows after the rotation: %v", got)
	}
}
