package bpf_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/bpf/internal/tunnellab"
	"github.com/clearpath-vpn/clearpath/server/gateway"
)

// A user floods new flows through a live tunnel past their quota: the
// gateway evicts their own least recently active flows (written to the
// flow log, counted per user, one log line), another user's flow on the
// same tunnel stays in the table and is logged whole.
func TestGatewayFlowQuotaThroughTunnel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs and builds namespaces")
	}
	const quota = 64
	fl := newFilterLab(t, bpf.Options{FlowTableSize: 1024, UserQuota: quota})
	tl, ff, logs, logPath := fl.tl, fl.ff, fl.logs, fl.logPath
	// Two users behind the one WireGuard peer of the lab: the filter
	// tells them apart by tunnel address.
	const mallory, bob = "mallory@example.com", "bob@example.com"
	if err := ff.OnPeer(netip.MustParseAddr(tunnellab.ClientAddr4), mallory, nil); err != nil {
		t.Fatal(err)
	}
	if err := ff.OnPeer(netip.MustParseAddr(tunnellab.ClientAddr6), bob, nil); err != nil {
		t.Fatal(err)
	}
	if err := tl.GW.Do(func() error { return ff.AddInterface(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}
	// Bob's flow first, then mallory's flood: 4 x quota new UDP flows.
	bobSrc, _ := tl.EchoUDP(t, "["+tunnellab.AllowedDst6+"]:9000", 1, 100)
	const flood = 4 * quota
	err := tl.Client.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(tunnellab.ClientAddr4)})
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range flood {
			if _, err := c.WriteToUDP([]byte("x"), &net.UDPAddr{IP: net.ParseIP(tunnellab.AllowedDst4), Port: 20000 + i}); err != nil {
				return fmt.Errorf("flood datagram %d: %w", i, err)
			}
			if i%quota == quota-1 {
				time.Sleep(200 * time.Millisecond) // let the reaper run, as a real flood's scans would
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var st gateway.UserFlowStats
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		for _, u := range ff.UserStats() {
			if u.User == mallory {
				st = u
			}
		}
		if st.Evicted > 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("mallory: %+v", st)
	if st.Evicted == 0 {
		t.Error("no flow of mallory was evicted")
	}
	if st.Live > quota {
		t.Errorf("mallory holds %d flows, quota %d", st.Live, quota)
	}
	if err := fl.close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var evicted, bobEnd int
	for r, err := range bpf.ReadFlowLog(bytes.NewReader(data)) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.End == bpf.EndEvicted:
			evicted++
			if r.User != mallory {
				t.Errorf("evicted a flow of %s: %+v", r.User, r)
			}
		case r.User == bob && r.End == bpf.EndShutdown:
			bobEnd++
			if r.SrcPort == nil || *r.SrcPort != bobSrc.Port() || r.Packets != 1 || r.ReplyPackets != 1 {
				t.Errorf("bob's record = %+v; want his echo from port %d with its reply", r, bobSrc.Port())
			}
		}
	}
	if uint64(evicted) != st.Evicted {
		t.Errorf("flow log has %d evicted records, the counter says %d", evicted, st.Evicted)
	}
	if bobEnd != 1 {
		t.Errorf("bob's flow has %d end records, want 1", bobEnd)
	}
	l := logs.String()
	if !strings.Contains(l, "user reached their flow quota") || !strings.Contains(l, "user="+mallory) {
		t.Errorf("gateway log lacks the eviction line for mallory:\n%s", l)
	}
	if n := strings.Count(l, "user reached their flow quota"); n > 1 {
		t.Errorf("%d eviction lines within seconds, want at most 1 per 10 s per user", n)
	}
}
