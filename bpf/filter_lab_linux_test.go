package bpf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/clearpath-vpn/clearpath/bpf/internal/tunnellab"
)

// eventLog collects the filter's events in the background.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	r      *EventReader
	done   chan struct{}
}

func collectEvents(t testing.TB, f *Filter) *eventLog {
	t.Helper()
	r, err := f.Events()
	if err != nil {
		t.Fatal(err)
	}
	el := &eventLog{r: r, done: make(chan struct{})}
	go func() {
		defer close(el.done)
		for {
			e, err := r.Read()
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("read event: %v", err)
				}
				return
			}
			el.mu.Lock()
			el.events = append(el.events, e)
			el.mu.Unlock()
		}
	}()
	t.Cleanup(func() { r.Close(); <-el.done })
	return el
}

// wait returns the first event matching ok, waiting up to 3 s.
func (el *eventLog) wait(t testing.TB, what string, ok func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		el.mu.Lock()
		for _, e := range el.events {
			if ok(e) {
				el.mu.Unlock()
				return e
			}
		}
		all := append([]Event(nil), el.events...)
		el.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event; got %d events: %+v", what, len(all), all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findFlow(t testing.TB, f *Filter, ok func(Flow) bool) (Flow, bool) {
	t.Helper()
	for fl, err := range f.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		if ok(fl) {
			return fl, true
		}
	}
	return Flow{}, false
}

func flowTo(src, dst string, proto uint8) func(Flow) bool {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	return func(f Flow) bool { return f.Src == s && f.Dst == d && f.Proto == proto }
}

const aliceID = 7

// attachHelperEnv makes the test binary load the filter, attach it to the
// named interface and wait to be killed (TestKilledProcessLeavesNoProgram).
const attachHelperEnv = "CLEARPATH_BPF_TEST_ATTACH"

func TestMain(m *testing.M) {
	tunnellab.RunHelperIfAsked()
	if iface := os.Getenv(attachHelperEnv); iface != "" {
		f, err := Load(Options{})
		if err == nil {
			err = f.Attach(iface)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "attached to", iface)
		select {}
	}
	os.Exit(m.Run())
}

// attachT loads a filter and attaches it to the gateway's group interface.
func attachT(t testing.TB, tl *tunnellab.Lab) *Filter {
	t.Helper()
	f := loadT(t, Options{})
	if err := tl.GW.Do(func() error { return f.Attach(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTunnelFilter runs the filter on the gateway's wireguard-go interface
// and sends real traffic through the tunnel: the user's allowed flows pass
// and are accounted (Flows, events, JSON flow log), a destination outside
// the user's policy and a source no peer registered are dropped.
func TestTunnelFilter(t *testing.T) {
	tl := tunnellab.New(t)

	// Without the filter everything the routing allows gets through,
	// including the denied destination and the spoofed source: what fails
	// below fails because of the filter.
	for _, c := range []struct{ src, dst string }{{"", tunnellab.DeniedDst4}, {tunnellab.SpoofAddr4, tunnellab.AllowedDst4}, {"", tunnellab.DeniedDst6}} {
		if out, ok := tl.Ping(t, c.src, c.dst, 1, 56); !ok {
			t.Fatalf("before the filter, ping %s from %q failed:\n%s", c.dst, c.src, out)
		}
	}

	f := attachT(t, tl)
	events := collectEvents(t, f)
	if err := f.SetPolicy(1, []netip.Prefix{netip.MustParsePrefix("10.10.1.0/24"), netip.MustParsePrefix("fd10::10/124")}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{tunnellab.ClientAddr4, tunnellab.ClientAddr6} {
		if err := f.SetPeer(netip.MustParseAddr(a), aliceID, 1); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("allowed ping is accounted", func(t *testing.T) {
		if out, ok := tl.Ping(t, "", tunnellab.AllowedDst4, 3, 100); !ok {
			t.Fatalf("ping %s (allowed) failed with the filter:\n%s", tunnellab.AllowedDst4, out)
		}
		fl, ok := findFlow(t, f, flowTo(tunnellab.ClientAddr4, tunnellab.AllowedDst4, ProtoICMP))
		if !ok {
			t.Fatal("no ICMP flow to the allowed destination in Flows()")
		}
		// 3 echo requests of 20 (IP) + 8 (ICMP) + 100 bytes, 3 replies.
		if fl.UserID != aliceID || fl.Packets != 3 || fl.Bytes != 3*128 || fl.ReplyPackets != 3 || fl.ReplyBytes != 3*128 ||
			fl.Verdict != VerdictAllow || fl.Interface != tl.GWIface || fl.ICMPType() != 8 {
			t.Errorf("flow = %+v; want user %d, 3 packets/384 bytes each way, allow, on %s, echo", fl, aliceID, tl.GWIface)
		}
		if d := time.Since(fl.FirstSeen); d < 0 || d > 10*time.Second || fl.LastSeen.Before(fl.FirstSeen) {
			t.Errorf("first seen %v, last seen %v: not within the last seconds", fl.FirstSeen, fl.LastSeen)
		}
		e := events.wait(t, "new flow", func(e Event) bool { return e.Kind == EventNewFlow && e.FlowKey == fl.FlowKey })
		if e.UserID != aliceID || e.Verdict != VerdictAllow || e.Bytes != 128 || e.Interface != tl.GWIface {
			t.Errorf("new flow event = %+v", e)
		}
	})

	t.Run("destination outside the policy is dropped", func(t *testing.T) {
		if out, ok := tl.Ping(t, "", tunnellab.DeniedDst4, 2, 56); ok {
			t.Fatalf("ping %s (outside the policy) got through:\n%s", tunnellab.DeniedDst4, out)
		}
		e := events.wait(t, "denied", func(e Event) bool {
			return e.Kind == EventDenied && e.Dst == netip.MustParseAddr(tunnellab.DeniedDst4)
		})
		if e.UserID != aliceID || e.Verdict != VerdictDeny || e.Src != netip.MustParseAddr(tunnellab.ClientAddr4) || e.Proto != ProtoICMP {
			t.Errorf("denied event = %+v", e)
		}
		fl, ok := findFlow(t, f, flowTo(tunnellab.ClientAddr4, tunnellab.DeniedDst4, ProtoICMP))
		if !ok || fl.Verdict != VerdictDeny || fl.Packets != 2 || fl.ReplyPackets != 0 || fl.UserID != aliceID {
			t.Errorf("denied flow = %+v (found %v); want 2 packets, no reply, deny", fl, ok)
		}
	})

	t.Run("IPv6 policy", func(t *testing.T) {
		if out, ok := tl.Ping(t, "", tunnellab.AllowedDst6, 2, 56); !ok {
			t.Fatalf("ping %s (allowed) failed:\n%s", tunnellab.AllowedDst6, out)
		}
		if out, ok := tl.Ping(t, "", tunnellab.DeniedDst6, 2, 56); ok {
			t.Fatalf("ping %s (outside the policy) got through:\n%s", tunnellab.DeniedDst6, out)
		}
		fl, ok := findFlow(t, f, flowTo(tunnellab.ClientAddr6, tunnellab.AllowedDst6, ProtoICMPv6))
		// 40 (IPv6) + 8 (ICMPv6) + 56.
		if !ok || fl.Packets != 2 || fl.Bytes != 2*104 || fl.ReplyPackets != 2 || fl.Verdict != VerdictAllow {
			t.Errorf("IPv6 allowed flow = %+v (found %v)", fl, ok)
		}
		events.wait(t, "IPv6 denied", func(e Event) bool {
			return e.Kind == EventDenied && e.Dst == netip.MustParseAddr(tunnellab.DeniedDst6) && e.UserID == aliceID
		})
	})

	t.Run("unregistered source is dropped and counted", func(t *testing.T) {
		before, err := f.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if out, ok := tl.Ping(t, tunnellab.SpoofAddr4, tunnellab.AllowedDst4, 2, 56); ok {
			t.Fatalf("ping from unregistered %s got through:\n%s", tunnellab.SpoofAddr4, out)
		}
		after, err := f.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if got := after.UnknownSource.Packets - before.UnknownSource.Packets; got != 2 {
			t.Errorf("unknown-source counter rose by %d, want 2", got)
		}
		if got := after.UnknownSource.Bytes - before.UnknownSource.Bytes; got != 2*84 {
			t.Errorf("unknown-source bytes rose by %d, want %d", got, 2*84)
		}
		e := events.wait(t, "unknown source", func(e Event) bool { return e.Kind == EventUnknownSource })
		if e.Src != netip.MustParseAddr(tunnellab.SpoofAddr4) || e.Dst != netip.MustParseAddr(tunnellab.AllowedDst4) || e.UserID != 0 || e.Verdict != VerdictUnknownSource {
			t.Errorf("unknown source event = %+v", e)
		}
		if fl, ok := findFlow(t, f, func(fl Flow) bool { return fl.Src == netip.MustParseAddr(tunnellab.SpoofAddr4) }); ok {
			t.Errorf("unregistered source got a flow entry: %+v", fl)
		}
	})

	var tcpKey FlowKey
	const tcpPayload = 1 << 20
	t.Run("TCP and UDP accounting", func(t *testing.T) {
		src, dst := tl.SendTCP(t, tunnellab.AllowedDst4+":5001", tcpPayload)
		tcpKey = FlowKey{Src: src.Addr(), Dst: dst.Addr(), Proto: ProtoTCP, SrcPort: src.Port(), DstPort: dst.Port()}
		fl, ok := findFlow(t, f, func(fl Flow) bool { return fl.FlowKey == tcpKey })
		if !ok {
			t.Fatalf("no flow %s", tcpKey)
		}
		// Every IPv4+TCP header is 40 to 60 bytes; wireguard-go hands the
		// kernel coalesced segments, which must count as the segments
		// they carry (MTU 1420: at most 1380 bytes of payload each).
		hdr := fl.Bytes - tcpPayload
		if fl.Packets < tcpPayload/1380 || hdr < 40*fl.Packets || hdr > 60*fl.Packets {
			t.Errorf("TCP flow %d packets, %d bytes for %d bytes of payload: headers do not add up", fl.Packets, fl.Bytes, tcpPayload)
		}
		if fl.ReplyPackets == 0 || fl.UserID != aliceID || fl.Verdict != VerdictAllow {
			t.Errorf("TCP flow = %+v", fl)
		}
		t.Logf("TCP flow: %d packets, %d bytes; replies %d packets, %d bytes", fl.Packets, fl.Bytes, fl.ReplyPackets, fl.ReplyBytes)

		src, dst = tl.EchoUDP(t, tunnellab.AllowedDst4+":5002", 5, 200)
		udpKey := FlowKey{Src: src.Addr(), Dst: dst.Addr(), Proto: ProtoUDP, SrcPort: src.Port(), DstPort: dst.Port()}
		fl, ok = findFlow(t, f, func(fl Flow) bool { return fl.FlowKey == udpKey })
		if !ok || fl.Packets != 5 || fl.Bytes != 5*228 || fl.ReplyPackets != 5 || fl.ReplyBytes != 5*228 {
			t.Errorf("UDP flow = %+v (found %v); want 5 packets of 228 bytes each way", fl, ok)
		}
	})

	t.Run("flow log", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "flows.jsonl")
		out, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		fl := NewFlowLog(f, out, FlowLogOptions{
			IdleTimeout: 500 * time.Millisecond,
			UserName: func(id uint32) string {
				if id == aliceID {
					return "alice@example.com"
				}
				return ""
			},
		})
		time.Sleep(600 * time.Millisecond)
		// A fresh flow that must stay: not idle yet.
		if out, ok := tl.Ping(t, "", "10.10.1.1", 1, 20); !ok {
			t.Fatalf("ping: %s", out)
		}
		n, err := fl.Flush(false)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("flow log (%d records):\n%s", n, data)
		var recs []FlowRecord
		for r, err := range ReadFlowLog(bytes.NewReader(data)) {
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		if len(recs) != n {
			t.Errorf("Flush reported %d records, the file has %d", n, len(recs))
		}
		find := func(ok func(FlowRecord) bool) (FlowRecord, bool) {
			for _, r := range recs {
				if ok(r) {
					return r, true
				}
			}
			return FlowRecord{}, false
		}
		r, ok := find(func(r FlowRecord) bool { return r.Dst == tunnellab.AllowedDst4 && r.Proto == "icmp" && r.Packets == 3 })
		if !ok || r.User != "alice@example.com" || r.UserID != aliceID || r.Src != tunnellab.ClientAddr4 || r.Bytes != 384 ||
			r.ReplyPackets != 3 || r.Verdict != "allow" || r.End != EndIdle || r.ICMPType == nil || *r.ICMPType != 8 ||
			r.Interface != tl.GWIface || r.FirstSeen.IsZero() || r.LastSeen.Before(r.FirstSeen) {
			t.Errorf("allowed ping record = %+v (found %v)", r, ok)
		}
		if r, ok := find(func(r FlowRecord) bool { return r.Dst == tunnellab.DeniedDst4 }); !ok || r.Verdict != "deny" || r.Packets != 2 || r.User != "alice@example.com" {
			t.Errorf("denied record = %+v (found %v)", r, ok)
		}
		if r, ok := find(func(r FlowRecord) bool { return r.Proto == "tcp" }); !ok || r.DstPort == nil || *r.DstPort != 5001 ||
			r.SrcPort == nil || *r.SrcPort != tcpKey.SrcPort || r.Bytes < tcpPayload {
			t.Errorf("TCP record = %+v (found %v)", r, ok)
		}
		if _, ok := find(func(r FlowRecord) bool { return r.Dst == "10.10.1.1" && r.Packets == 1 }); ok {
			t.Error("a flow active 0.6 s after the idle ones was logged as idle")
		}
		// Logged flows left the kernel's table; the active one stayed.
		if fl, ok := findFlow(t, f, flowTo(tunnellab.ClientAddr4, tunnellab.DeniedDst4, ProtoICMP)); ok {
			t.Errorf("logged flow still in the table: %+v", fl)
		}
		if _, ok := findFlow(t, f, func(fl Flow) bool { return fl.Dst == netip.MustParseAddr("10.10.1.1") && fl.Packets == 1 }); !ok {
			t.Error("the active flow was removed from the table")
		}
		// Shutdown writes what is left.
		if n, err := fl.Flush(true); err != nil || n == 0 {
			t.Errorf("Flush(all) = %d, %v; want the remaining flows", n, err)
		}
		for fl, err := range f.Flows() {
			t.Errorf("flow left after Flush(all): %+v %v", fl, err)
		}
	})
}

// TestDetachOnClose: the program is on the interface while the filter is
// attached, and Close leaves no program behind (tcx queries, bpftool if
// installed, and the program is gone from the kernel), after which the
// denied destination is reachable again.
func TestDetachOnClose(t *testing.T) {
	tl := tunnellab.New(t)
	f, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tl.GW.Do(func() error { return f.Attach(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPolicy(1, []netip.Prefix{netip.MustParsePrefix("10.10.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr(tunnellab.ClientAddr4), aliceID, 1); err != nil {
		t.Fatal(err)
	}
	info, err := f.objs.FlowsIngress.Info()
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := info.ID()
	in, eg := tl.TCXPrograms(t, tl.GWIface)
	if len(in) != 1 || in[0] != wantID || len(eg) != 1 {
		t.Fatalf("attached: tcx ingress programs %v (want [%d]), egress %v", in, wantID, eg)
	}
	// bpftool, where installed, agrees. Version 7.1 (Debian 12) predates
	// tcx in `net show`; its link list shows tcx links as "type 11" with
	// their program.
	_, lookErr := exec.LookPath("bpftool")
	progRef := fmt.Sprintf("prog %d ", wantID)
	if lookErr == nil {
		if bt, err := tl.GW.Exec(context.Background(), "bpftool", "link", "show"); err != nil || !strings.Contains(bt, progRef) {
			t.Errorf("bpftool link show while attached has no link to %q: %v\n%s", progRef, err, bt)
		}
	} else {
		t.Log("bpftool not installed: checking with tcx queries only")
	}
	if out, ok := tl.Ping(t, "", tunnellab.DeniedDst4, 1, 56); ok {
		t.Fatalf("denied destination reachable while attached:\n%s", out)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	in, eg = tl.TCXPrograms(t, tl.GWIface)
	if len(in) != 0 || len(eg) != 0 {
		t.Errorf("after Close: tcx ingress %v, egress %v; want none", in, eg)
	}
	if lookErr == nil {
		if bt, err := tl.GW.Exec(context.Background(), "bpftool", "link", "show"); err != nil || strings.Contains(bt, progRef) {
			t.Errorf("bpftool link show after Close still has %q: %v\n%s", progRef, err, bt)
		}
	}
	// Nothing pinned, nothing else holds it: the program leaves the kernel
	// (freed after an RCU grace period, hence the wait).
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		p, err := ebpf.NewProgramFromID(wantID)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err == nil {
			p.Close()
		}
		if time.Now().After(deadline) {
			t.Errorf("program %d still loaded 3 s after Close (%v)", wantID, err)
			break
		}
	}
	if out, ok := tl.Ping(t, "", tunnellab.DeniedDst4, 1, 56); !ok {
		t.Errorf("after Close the denied destination is still unreachable:\n%s", out)
	}
	if err := tl.GW.Do(func() error { return f.Attach(tl.GWIface) }); err == nil {
		t.Error("Attach after Close succeeded")
	}
}

// TestAttachErrors: each refusal names what is wrong.
func TestAttachErrors(t *testing.T) {
	tl := tunnellab.New(t)
	f := loadT(t, Options{})
	for _, c := range []struct {
		iface, want string
	}{
		{"nosuchif0", "no such interface"},
		{tl.Prefix + "client", "link-layer header"}, // the gateway's veth to the client
	} {
		err := tl.GW.Do(func() error { return f.Attach(c.iface) })
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.iface) {
			t.Errorf("Attach(%s) = %v; want an error naming it and saying %q", c.iface, err, c.want)
		}
	}
	if err := tl.GW.Do(func() error { return f.Attach(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}
	if err := tl.GW.Do(func() error { return f.Attach(tl.GWIface) }); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("second Attach = %v; want already attached", err)
	}
	if got := f.Attached(); len(got) != 1 || got[0] != tl.GWIface {
		t.Errorf("Attached() = %v", got)
	}
	if err := f.Detach(tl.GWIface); err != nil {
		t.Fatal(err)
	}
	if in, eg := tl.TCXPrograms(t, tl.GWIface); len(in)+len(eg) != 0 {
		t.Errorf("after Detach: ingress %v egress %v", in, eg)
	}
	if err := f.Detach(tl.GWIface); err == nil {
		t.Error("Detach of a detached interface succeeded")
	}
}

// TestKilledProcessLeavesNoProgram: a gateway killed with SIGKILL leaves
// no program on its interfaces, because nothing is pinned and the links
// die with the process's file descriptors.
func TestKilledProcessLeavesNoProgram(t *testing.T) {
	tl := tunnellab.New(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := tl.GW.StartEnv("attacher", []string{attachHelperEnv + "=" + tl.GWIface}, exe, "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	wait := func(what string, ok func(in, eg []ebpf.ProgramID) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			in, eg := tl.TCXPrograms(t, tl.GWIface)
			if ok(in, eg) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: tcx ingress %v egress %v\n%s", what, in, eg, p.Log())
			}
		}
	}
	wait("helper attaches", func(in, eg []ebpf.ProgramID) bool { return len(in) == 1 && len(eg) == 1 })
	if out, ok := tl.Ping(t, tunnellab.SpoofAddr4, tunnellab.AllowedDst4, 1, 56); ok {
		t.Fatalf("the helper's filter (no peers registered) let traffic through:\n%s", out)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	wait("after SIGKILL", func(in, eg []ebpf.ProgramID) bool { return len(in)+len(eg) == 0 })
	if out, ok := tl.Ping(t, tunnellab.SpoofAddr4, tunnellab.AllowedDst4, 1, 56); !ok {
		t.Errorf("traffic still blocked after the process died:\n%s", out)
	}
}
