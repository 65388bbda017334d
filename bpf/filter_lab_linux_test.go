package bpf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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

// TestTunnelFilter runs the filter on the gateway's wireguard-go interface
// and sends real traffic through the tunnel: the user's allowed flows pass
// and are accounted (Flows, events, JSON flow log), a destination outside
// the user's policy and a source no peer registered are dropped.
func TestTunnelFilter(t *testing.T) {
	tl := newTunnelLab(t)

	// Without the filter everything the routing allows gets through,
	// including the denied destination and the spoofed source: what fails
	// below fails because of the filter.
	for _, c := range []struct{ src, dst string }{{"", deniedDst4}, {spoofAddr4, allowedDst4}, {"", deniedDst6}} {
		if out, ok := tl.ping(t, c.src, c.dst, 1, 56); !ok {
			t.Fatalf("before the filter, ping %s from %q failed:\n%s", c.dst, c.src, out)
		}
	}

	f := tl.attach(t)
	events := collectEvents(t, f)
	if err := f.SetPolicy(1, []netip.Prefix{netip.MustParsePrefix("10.10.1.0/24"), netip.MustParsePrefix("fd10::10/124")}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{clientAddr4, clientAddr6} {
		if err := f.SetPeer(netip.MustParseAddr(a), aliceID, 1); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("allowed ping is accounted", func(t *testing.T) {
		if out, ok := tl.ping(t, "", allowedDst4, 3, 100); !ok {
			t.Fatalf("ping %s (allowed) failed with the filter:\n%s", allowedDst4, out)
		}
		fl, ok := findFlow(t, f, flowTo(clientAddr4, allowedDst4, ProtoICMP))
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
		if out, ok := tl.ping(t, "", deniedDst4, 2, 56); ok {
			t.Fatalf("ping %s (outside the policy) got through:\n%s", deniedDst4, out)
		}
		e := events.wait(t, "denied", func(e Event) bool {
			return e.Kind == EventDenied && e.Dst == netip.MustParseAddr(deniedDst4)
		})
		if e.UserID != aliceID || e.Verdict != VerdictDeny || e.Src != netip.MustParseAddr(clientAddr4) || e.Proto != ProtoICMP {
			t.Errorf("denied event = %+v", e)
		}
		fl, ok := findFlow(t, f, flowTo(clientAddr4, deniedDst4, ProtoICMP))
		if !ok || fl.Verdict != VerdictDeny || fl.Packets != 2 || fl.ReplyPackets != 0 || fl.UserID != aliceID {
			t.Errorf("denied flow = %+v (found %v); want 2 packets, no reply, deny", fl, ok)
		}
	})

	t.Run("IPv6 policy", func(t *testing.T) {
		if out, ok := tl.ping(t, "", allowedDst6, 2, 56); !ok {
			t.Fatalf("ping %s (allowed) failed:\n%s", allowedDst6, out)
		}
		if out, ok := tl.ping(t, "", deniedDst6, 2, 56); ok {
			t.Fatalf("ping %s (outside the policy) got through:\n%s", deniedDst6, out)
		}
		fl, ok := findFlow(t, f, flowTo(clientAddr6, allowedDst6, ProtoICMPv6))
		// 40 (IPv6) + 8 (ICMPv6) + 56.
		if !ok || fl.Packets != 2 || fl.Bytes != 2*104 || fl.ReplyPackets != 2 || fl.Verdict != VerdictAllow {
			t.Errorf("IPv6 allowed flow = %+v (found %v)", fl, ok)
		}
		events.wait(t, "IPv6 denied", func(e Event) bool {
			return e.Kind == EventDenied && e.Dst == netip.MustParseAddr(deniedDst6) && e.UserID == aliceID
		})
	})

	t.Run("unregistered source is dropped and counted", func(t *testing.T) {
		before, err := f.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if out, ok := tl.ping(t, spoofAddr4, allowedDst4, 2, 56); ok {
			t.Fatalf("ping from unregistered %s got through:\n%s", spoofAddr4, out)
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
		if e.Src != netip.MustParseAddr(spoofAddr4) || e.Dst != netip.MustParseAddr(allowedDst4) || e.UserID != 0 || e.Verdict != VerdictUnknownSource {
			t.Errorf("unknown source event = %+v", e)
		}
		if fl, ok := findFlow(t, f, func(fl Flow) bool { return fl.Src == netip.MustParseAddr(spoofAddr4) }); ok {
			t.Errorf("unregistered source got a flow entry: %+v", fl)
		}
	})

	var tcpKey FlowKey
	const tcpPayload = 1 << 20
	t.Run("TCP and UDP accounting", func(t *testing.T) {
		tcpKey = tl.sendTCP(t, allowedDst4+":5001", tcpPayload)
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

		udpKey := tl.echoUDP(t, allowedDst4+":5002", 5, 200)
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
		if out, ok := tl.ping(t, "", "10.10.1.1", 1, 20); !ok {
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
		r, ok := find(func(r FlowRecord) bool { return r.Dst == allowedDst4 && r.Proto == "icmp" && r.Packets == 3 })
		if !ok || r.User != "alice@example.com" || r.UserID != aliceID || r.Src != clientAddr4 || r.Bytes != 384 ||
			r.ReplyPackets != 3 || r.Verdict != "allow" || r.End != EndIdle || r.ICMPType == nil || *r.ICMPType != 8 ||
			r.Interface != tl.GWIface || r.FirstSeen.IsZero() || r.LastSeen.Before(r.FirstSeen) {
			t.Errorf("allowed ping record = %+v (found %v)", r, ok)
		}
		if r, ok := find(func(r FlowRecord) bool { return r.Dst == deniedDst4 }); !ok || r.Verdict != "deny" || r.Packets != 2 || r.User != "alice@example.com" {
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
		if fl, ok := findFlow(t, f, flowTo(clientAddr4, deniedDst4, ProtoICMP)); ok {
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

// sendTCP connects from the client to addr in the VPC, sends n bytes and
// waits for the server's acknowledgement; it returns the flow's key.
func (tl *tunnelLab) sendTCP(t testing.TB, addr string, n int) FlowKey {
	t.Helper()
	ln, err := tl.vpc.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		k, _ := io.Copy(io.Discard, c)
		c.Write([]byte("ok"))
		got <- k
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := tl.client.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	if k := <-got; k != int64(n) || string(reply) != "ok" {
		t.Fatalf("TCP: server got %d of %d bytes, reply %q", k, n, reply)
	}
	la := c.LocalAddr().(*net.TCPAddr).AddrPort()
	ra := netip.MustParseAddrPort(addr)
	return FlowKey{Src: la.Addr().Unmap(), Dst: ra.Addr(), Proto: ProtoTCP, SrcPort: la.Port(), DstPort: ra.Port()}
}

// echoUDP sends count datagrams of size bytes from the client to an echo
// server at addr in the VPC and waits for each echo.
func (tl *tunnelLab) echoUDP(t testing.TB, addr string, count, size int) FlowKey {
	t.Helper()
	pc, err := tl.vpc.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tl.client.DialContext(ctx, "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for i := range count {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(bytes.Repeat([]byte{byte(i)}, size)); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || n != size {
			t.Fatalf("UDP echo %d: %d bytes, %v", i, n, err)
		}
	}
	la := c.LocalAddr().(*net.UDPAddr).AddrPort()
	ra := netip.MustParseAddrPort(addr)
	return FlowKey{Src: la.Addr().Unmap(), Dst: ra.Addr(), Proto: ProtoUDP, SrcPort: la.Port(), DstPort: ra.Port()}
}

// tcxPrograms returns the ids of the programs on tcx ingress and egress of
// iface in node.
func (tl *tunnelLab) tcxPrograms(t testing.TB, iface string) (ingress, egress []ebpf.ProgramID) {
	t.Helper()
	err := tl.gw.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		for _, q := range []struct {
			at  ebpf.AttachType
			dst *[]ebpf.ProgramID
		}{{ebpf.AttachTCXIngress, &ingress}, {ebpf.AttachTCXEgress, &egress}} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: q.at})
			if err != nil {
				return err
			}
			for _, p := range res.Programs {
				*q.dst = append(*q.dst, p.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ingress, egress
}

// TestDetachOnClose: the program is on the interface while the filter is
// attached, and Close leaves no program behind (tcx query and bpftool
// agree), after which the denied destination is reachable again.
func TestDetachOnClose(t *testing.T) {
	tl := newTunnelLab(t)
	f, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tl.gw.Do(func() error { return f.Attach(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPolicy(1, []netip.Prefix{netip.MustParsePrefix("10.10.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr(clientAddr4), aliceID, 1); err != nil {
		t.Fatal(err)
	}
	info, err := f.objs.FlowsIngress.Info()
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := info.ID()
	in, eg := tl.tcxPrograms(t, tl.GWIface)
	if len(in) != 1 || in[0] != wantID || len(eg) != 1 {
		t.Fatalf("attached: tcx ingress programs %v (want [%d]), egress %v", in, wantID, eg)
	}
	// bpftool 7.1 (Debian 12) predates tcx in `net show`; its link list
	// shows tcx links as "type 11" with their program.
	progRef := fmt.Sprintf("prog %d ", wantID)
	if bt, err := tl.gw.Exec(context.Background(), "bpftool", "link", "show"); err != nil || !strings.Contains(bt, progRef) {
		t.Errorf("bpftool link show while attached has no link to %q: %v\n%s", progRef, err, bt)
	}
	if out, ok := tl.ping(t, "", deniedDst4, 1, 56); ok {
		t.Fatalf("denied destination reachable while attached:\n%s", out)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	in, eg = tl.tcxPrograms(t, tl.GWIface)
	if len(in) != 0 || len(eg) != 0 {
		t.Errorf("after Close: tcx ingress %v, egress %v; want none", in, eg)
	}
	if bt, err := tl.gw.Exec(context.Background(), "bpftool", "link", "show"); err != nil || strings.Contains(bt, progRef) {
		t.Errorf("bpftool link show after Close still has %q: %v\n%s", progRef, err, bt)
	}
	// Nothing pinned, nothing else holds it: the program left the kernel.
	if bt, err := tl.gw.Exec(context.Background(), "bpftool", "prog", "show", "id", fmt.Sprint(wantID)); err == nil {
		t.Errorf("program %d still loaded after Close:\n%s", wantID, bt)
	}
	if out, ok := tl.ping(t, "", deniedDst4, 1, 56); !ok {
		t.Errorf("after Close the denied destination is still unreachable:\n%s", out)
	}
	if err := tl.gw.Do(func() error { return f.Attach(tl.GWIface) }); err == nil {
		t.Error("Attach after Close succeeded")
	}
}

// TestAttachErrors: each refusal names what is wrong.
func TestAttachErrors(t *testing.T) {
	tl := newTunnelLab(t)
	f := loadT(t, Options{})
	for _, c := range []struct {
		iface, want string
	}{
		{"nosuchif0", "no such interface"},
		{tl.Prefix + "client", "link-layer header"}, // the gateway's veth to the client
	} {
		err := tl.gw.Do(func() error { return f.Attach(c.iface) })
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.iface) {
			t.Errorf("Attach(%s) = %v; want an error naming it and saying %q", c.iface, err, c.want)
		}
	}
	if err := tl.gw.Do(func() error { return f.Attach(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}
	if err := tl.gw.Do(func() error { return f.Attach(tl.GWIface) }); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("second Attach = %v; want already attached", err)
	}
	if got := f.Attached(); len(got) != 1 || got[0] != tl.GWIface {
		t.Errorf("Attached() = %v", got)
	}
	if err := f.Detach(tl.GWIface); err != nil {
		t.Fatal(err)
	}
	if in, eg := tl.tcxPrograms(t, tl.GWIface); len(in)+len(eg) != 0 {
		t.Errorf("after Detach: ingress %v egress %v", in, eg)
	}
	if err := f.Detach(tl.GWIface); err == nil {
		t.Error("Detach of a detached interface succeeded")
	}
}
