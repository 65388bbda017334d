package bpf_test

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/bpf/internal/tunnellab"
	"github.com/clearpath-vpn/clearpath/server/gateway"
)

// This tests server/gateway's FlowFilter (the gateway's handle on this
// package) here, next to the lab it needs.

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// filterLab is a tunnel lab with a gateway.FlowFilter on it, logging to
// a temporary flow log and a captured gateway log.
type filterLab struct {
	tl      *tunnellab.Lab
	ff      *gateway.FlowFilter
	logs    *syncBuffer
	logPath string
	closed  bool
}

// newFilterLab builds it with the kernel table options table (the zero
// value: the defaults); the filter is closed at cleanup unless the test
// closed it (close) to read the flow log written on Close.
func newFilterLab(t *testing.T, table bpf.Options) *filterLab {
	t.Helper()
	fl := &filterLab{tl: tunnellab.New(t), logs: &syncBuffer{}, logPath: filepath.Join(t.TempDir(), "flows.jsonl")}
	log := slog.New(slog.NewTextHandler(fl.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if fl.ff, err = gateway.NewFlowFilterWith(gateway.FlowFilterOptions{LogPath: fl.logPath, Log: log, Table: table}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !fl.closed {
			fl.ff.Close()
		}
	})
	return fl
}

func (fl *filterLab) close() error {
	fl.closed = true
	return fl.ff.Close()
}

// TestGatewayFlowFilter drives gateway.FlowFilter the way the gateway will:
// peers registered before the interface is attached, a user's own allow
// list, a revoked address, a peer moved back to the group's default, and
// the flow log written on Close with the user's name.
func TestGatewayFlowFilter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs and builds namespaces")
	}
	fl := newFilterLab(t, bpf.Options{})
	tl, ff, logs, logPath := fl.tl, fl.ff, fl.logs, fl.logPath
	const alice = "alice@example.com"
	aliceList := []netip.Prefix{netip.MustParsePrefix("10.10.1.0/24"), netip.MustParsePrefix("fd10::10/124")}
	for _, a := range []string{tunnellab.ClientAddr4, tunnellab.ClientAddr6} {
		if err := ff.OnPeer(netip.MustParseAddr(a), alice, aliceList); err != nil {
			t.Fatal(err)
		}
	}
	if err := ff.OnPeer(netip.Addr{}, alice, nil); err != nil {
		t.Errorf("OnPeer with no address (a peer without IPv6) = %v, want ignored", err)
	}
	if err := ff.OnPeer(netip.MustParseAddr("10.100.0.9"), "", nil); err == nil {
		t.Error("OnPeer with an empty user succeeded")
	}
	if err := tl.GW.Do(func() error { return ff.AddInterface(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}

	reach := func(src, dst string, want bool) {
		t.Helper()
		out, ok := tl.Ping(t, src, dst, 1, 56)
		if ok != want {
			t.Errorf("ping %s from %q: reached %v, want %v\n%s", dst, src, ok, want, out)
		}
	}
	reach("", tunnellab.AllowedDst4, true)
	reach("", tunnellab.AllowedDst6, true)
	reach("", tunnellab.DeniedDst4, false)
	reach("", tunnellab.DeniedDst6, false)
	reach(tunnellab.SpoofAddr4, tunnellab.AllowedDst4, false)

	// Revoked: its packets are dropped even though WireGuard still has it.
	if err := ff.OnPeerRemoved(netip.MustParseAddr(tunnellab.ClientAddr4)); err != nil {
		t.Fatal(err)
	}
	reach("", tunnellab.AllowedDst4, false)
	reach("", tunnellab.AllowedDst6, true)
	// Back with no list of its own: the group's routing decides.
	if err := ff.OnPeer(netip.MustParseAddr(tunnellab.ClientAddr4), alice, nil); err != nil {
		t.Fatal(err)
	}
	reach("", tunnellab.DeniedDst4, true)
	reach("", tunnellab.DeniedDst6, false)

	c, err := ff.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Allowed.Packets == 0 || c.Denied.Packets == 0 || c.UnknownSource.Packets == 0 {
		t.Errorf("counters = %+v; want allowed, denied and unknown-source packets", c)
	}

	if err := fl.close(); err != nil {
		t.Fatal(err)
	}
	if in, eg := tl.TCXPrograms(t, tl.GWIface); len(in)+len(eg) != 0 {
		t.Errorf("after Close: tcx programs ingress %v egress %v", in, eg)
	}
	reach(tunnellab.SpoofAddr4, tunnellab.AllowedDst4, true)

	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flow log:\n%s", data)
	var deniedV4, deniedV6, allowedV4 bool
	for r, err := range bpf.ReadFlowLog(bytes.NewReader(data)) {
		if err != nil {
			t.Fatal(err)
		}
		if r.User != alice || r.Interface != tl.GWIface || (r.End != bpf.EndShutdown && r.End != bpf.EndStart) {
			t.Errorf("record %+v: want user %s on %s, end start or shutdown", r, alice, tl.GWIface)
		}
		if r.End == bpf.EndStart {
			continue
		}
		switch {
		case r.Dst == tunnellab.DeniedDst4 && r.Verdict == "deny":
			deniedV4 = true
		case r.Dst == tunnellab.DeniedDst6 && r.Verdict == "deny":
			deniedV6 = true
		case r.Dst == tunnellab.AllowedDst4 && r.Verdict == "allow" && r.ReplyPackets > 0:
			allowedV4 = true
		}
	}
	if !deniedV4 || !deniedV6 || !allowedV4 {
		t.Errorf("flow log lacks a record: denied v4 %v, denied v6 %v, allowed v4 %v", deniedV4, deniedV6, allowedV4)
	}
	l := logs.String()
	for _, want := range []string{"flow denied by the user's policy", "user=" + alice, "unregistered tunnel address", tunnellab.SpoofAddr4 + " -> "} {
		if !strings.Contains(l, want) {
			t.Errorf("gateway log lacks %q:\n%s", want, l)
		}
	}
}
