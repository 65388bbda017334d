package bpf

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// destOpts is an 8-byte destination options header (PadN only); ipv6
// chains it.
func destOpts() []byte { return []byte{60, 0, 1, 4, 0, 0, 0, 0} }

func chain(n int) [][]byte {
	var ext [][]byte
	for range n {
		ext = append(ext, destOpts())
	}
	return ext
}

// readEvent returns the next event of kind, failing after a second.
func readEvent(t *testing.T, r *EventReader, kind EventKind) Event {
	t.Helper()
	r.SetDeadline(time.Now().Add(time.Second))
	for {
		e, err := r.Read()
		if errors.Is(err, ErrTimeout) {
			t.Fatalf("no %v event", kind)
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == kind {
			return e
		}
	}
}

// The IPv6 header walk reaches the transport header or the packet is
// unparsed: dropped, counted and reported with its user. On main a packet
// with seven destination-options headers was logged as protocol 60 without
// ports, and let through.
func TestHeaderWalk(t *testing.T) {
	f := testFilter(t)
	events, err := f.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	// Six extension headers (as many as a legitimate packet carries):
	// the walk reaches UDP and the policy judges the port's flow.
	six := ether(ethIPv6, ipv6("fd00::2", "fd10::9", 17, udp(5000, 53, 10), chain(6)...))
	if got := run(t, f.objs.FlowsIngress, six, 0); got != tcxNext {
		t.Errorf("6 extension headers then UDP: returned %d, want pass", int32(got))
	}
	if _, ok, _ := f.TakeFlow(mustKey("fd00::2", "fd10::9", 17, 5000, 53)); !ok {
		t.Error("6 extension headers then UDP: no UDP flow with its ports")
	}

	for _, c := range []struct {
		name  string
		frame []byte
		proto uint8 // where the walk stopped
	}{
		{"7 extension headers", ether(ethIPv6, ipv6("fd00::2", "fd10::9", 17, udp(5000, 53, 10), chain(7)...)), 60},
		{"20 extension headers", ether(ethIPv6, ipv6("fd00::2", "fd10::9", 6, tcp(5000, 22, 0, 10), chain(20)...)), 60},
		// The second header claims 64 bytes the packet does not have.
		{"extension headers longer than the packet", ether(ethIPv6, ipv6("fd00::2", "fd10::9", 17, nil, destOpts(), []byte{60, 7, 1, 4, 0, 0, 0, 0})), 17},
		// The packet ends where its second header should start.
		{"extension header missing", ether(ethIPv6, ipv6("fd00::2", "fd10::9", 60, nil, destOpts())), 60},
	} {
		before, _ := f.Counters()
		if got := run(t, f.objs.FlowsIngress, c.frame, 0); got != tcxDrop {
			t.Errorf("%s: returned %d, want drop", c.name, int32(got))
		}
		for fl := range f.Flows() {
			t.Errorf("%s: flow %v entered the table", c.name, fl.FlowKey)
		}
		after, _ := f.Counters()
		if after.Unparsed.Packets != before.Unparsed.Packets+1 {
			t.Errorf("%s: unparsed counter %d -> %d", c.name, before.Unparsed.Packets, after.Unparsed.Packets)
		}
		e := readEvent(t, events, EventUnparsed)
		if e.UserID != 7 || e.Verdict != VerdictUnparsed || e.Src != netip.MustParseAddr("fd00::2") || e.Dst != netip.MustParseAddr("fd10::9") || e.Proto != c.proto {
			t.Errorf("%s: event = %+v; want user 7, unparsed, fd00::2 -> fd10::9, header %d", c.name, e, c.proto)
		}
		time.Sleep(110 * time.Millisecond) // events are limited to 10/s per user
	}
	if u, err := f.UserFlows(7); err != nil || u.Unparsed != 4 {
		t.Errorf("user 7: %+v, %v; want 4 unparsed packets", u, err)
	}
	// From an unregistered source it is an unknown source as before.
	before, _ := f.Counters()
	run(t, f.objs.FlowsIngress, ether(ethIPv6, ipv6("fd00::3", "fd10::9", 17, udp(1, 2, 0), chain(7)...)), 0)
	if after, _ := f.Counters(); after.UnknownSource.Packets != before.UnknownSource.Packets+1 || after.Unparsed != before.Unparsed {
		t.Errorf("unknown source with 7 headers: counters %+v -> %+v", before, after)
	}
}

// flows.unparsed: allow lets unparsed packets through, still counted and
// reported, and accounted as a flow of the header type without ports.
func TestHeaderWalkAllowUnparsed(t *testing.T) {
	f := loadT(t, Options{l3Offset: 14, FlowTableSize: 1024, AllowUnparsed: true})
	if err := f.SetPeer(netip.MustParseAddr("fd00::2"), 7, 0); err != nil {
		t.Fatal(err)
	}
	events, err := f.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	frame := ether(ethIPv6, ipv6("fd00::2", "fd10::9", 17, udp(5000, 53, 10), chain(7)...))
	if got := run(t, f.objs.FlowsIngress, frame, 0); got != tcxNext {
		t.Errorf("returned %d, want pass", int32(got))
	}
	if e := readEvent(t, events, EventUnparsed); e.Verdict != VerdictAllow || e.UserID != 7 {
		t.Errorf("event = %+v; want allow, user 7", e)
	}
	if fl, ok, _ := f.TakeFlow(mustKey("fd00::2", "fd10::9", 60, 0, 0)); !ok || fl.Verdict != VerdictAllow {
		t.Errorf("flow = %+v (found %v); want an allowed flow of protocol 60", fl, ok)
	}
	if c, _ := f.Counters(); c.Unparsed.Packets != 1 {
		t.Errorf("unparsed counter = %d, want 1", c.Unparsed.Packets)
	}
}
