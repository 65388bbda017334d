package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// TestPushed10kPrefixesTimings measures `vpn up` and `vpn status` with a
// gateway pushing 10,000 prefixes (the limit raised with --max-prefixes),
// and the agent's CPU per status. A measurement, not an assertion on time:
// run with VPN_SCALE=1.
func TestPushed10kPrefixesTimings(t *testing.T) {
	if os.Getenv("VPN_SCALE") == "" {
		t.Skip("a measurement: set VPN_SCALE=1 to run it")
	}
	e := newEnv(t)
	var allow []string
	for i := range 10_000 {
		if i%10 == 9 {
			allow = append(allow, fmt.Sprintf(`"fd10:%x:%x::/64"`, 0x100+i>>16, i&0xffff))
		} else {
			allow = append(allow, fmt.Sprintf("10.%d.%d.0/24", 128+i>>8&0x7f, i&0xff))
		}
	}
	reconfigure(t, e, func(s string) string {
		return strings.Replace(s, `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`"]`, `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`", `+strings.Join(allow, ", ")+`]`, 1)
	})
	ctx := ctxT(t, 5*time.Minute)
	alice := e.Client("s10k")
	tok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface); err == nil || !strings.Contains(out, "more than the 1000") {
		t.Errorf("10,004 prefixes with the default limit must be refused: %v\n%s", err, out)
	}
	start := time.Now()
	out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface, "--max-prefixes", "20000", "--timeout", "3m")
	if err != nil {
		t.Fatalf("vpn up: %v\n%s", err, out)
	}
	t.Logf("vpn up with 10,004 pushed prefixes: %v", time.Since(start).Round(time.Millisecond))
	st := status(t, alice)
	cpu := func() time.Duration {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", st.AgentPID))
		f := strings.Fields(string(b)[strings.LastIndex(string(b), ")")+2:])
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return time.Duration(u+s) * 10 * time.Millisecond
	}
	c0 := cpu()
	start = time.Now()
	const n = 10
	for range n {
		if _, err := alice.Run(ctx, "status", "--json"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("vpn status --json: %v wall each, agent CPU %v each", (time.Since(start) / n).Round(time.Millisecond), (cpu()-c0)/n)
	if fi, err := os.Stat(alice.StateDir + "/journal"); err == nil {
		t.Logf("journal: %d bytes", fi.Size())
	}
	down(t, alice)
}
