package bpf

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// productionTableSize is the flow table the gateway loads for the pool of
// the README's example config (one network, 100.64.0.0/24: 253 peers) at
// the default quota of 4096 flows per user (TableSizeFor). Today's main
// loads 131,072 entries shared by everyone.
const productionTableSize = 253 * 4096

// floodFrame returns the Ethernet frame of attacker flow i: a TCP SYN-sized
// packet from src to a distinct (address, port) pair per i, written into
// buf (reused: the kernel copies it).
func floodFrame(buf []byte, i int) []byte {
	// Destination 10.64.(i>>24).(i>>16), port i&0xffff: distinct for
	// every i below 2^32.
	ip := buf[14:]
	ip[16], ip[17], ip[18], ip[19] = 10, 64, byte(i>>24), byte(i>>16)
	binary.BigEndian.PutUint16(ip[20+2:], uint16(i))
	return buf
}

// The attack of issue 22: a tunnel user opens more new flows than the
// whole flow table holds, so fast that the flow log never scans in
// between (it scans every 10 s). The victim's flow, opened first, must
// still be in the table and written by the flow log, and the attacker
// holds no more than their quota. On main (one 131,072-entry LRU table
// shared by all) the flood evicts the victim's flow: it is never logged.
func TestFloodKeepsVictimFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a production-size table (about 1.1 million test runs)")
	}
	f := loadT(t, Options{l3Offset: 14, FlowTableSize: productionTableSize})
	const victim, attacker = 7, 666
	if err := f.SetPeer(netip.MustParseAddr("10.100.0.2"), victim, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr("10.100.0.66"), attacker, 0); err != nil {
		t.Fatal(err)
	}
	victimFrame := ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.5", 6, tcp(40000, 5432, 0, 100), nil, 0))
	if got := run(t, f.objs.FlowsIngress, victimFrame, 0); got != tcxNext {
		t.Fatalf("victim's first packet returned %d", int32(got))
	}

	buf := ether(ethIPv4, ipv4("10.100.0.66", "10.64.0.0", 6, tcp(1, 1, 0, 0), nil, 0))
	flood := productionTableSize + productionTableSize/8
	start := time.Now()
	passed := 0
	for i := range flood {
		ret, err := f.objs.FlowsIngress.Run(&ebpf.RunOptions{Data: floodFrame(buf, i)})
		if err != nil {
			t.Fatalf("flood packet %d: %v", i, err)
		}
		if ret == tcxNext {
			passed++
		}
	}
	t.Logf("attacker sent %d new flows in %v (%d let through)", flood, time.Since(start).Round(time.Millisecond), passed)

	// The victim's flow goes on, and the log has it with both packets.
	if got := run(t, f.objs.FlowsIngress, victimFrame, 0); got != tcxNext {
		t.Errorf("victim's packet after the flood returned %d", int32(got))
	}
	var out strings.Builder
	n, err := NewFlowLog(f, &out, FlowLogOptions{}).Flush(true)
	if err != nil {
		t.Fatal(err)
	}
	var victimRecs, attackerRecs int
	for r, err := range ReadFlowLog(strings.NewReader(out.String())) {
		if err != nil {
			t.Fatal(err)
		}
		switch r.UserID {
		case victim:
			victimRecs++
			if r.Dst != "10.10.1.5" || r.DstPort == nil || *r.DstPort != 5432 || r.Packets != 2 {
				t.Errorf("victim's record = %+v; want 10.10.1.5:5432 with 2 packets (1: the flood evicted the flow, and the later packet started a new one)", r)
			}
		case attacker:
			attackerRecs++
		}
	}
	t.Logf("flow log: %d records, %d of the victim, %d of the attacker", n, victimRecs, attackerRecs)
	if victimRecs != 1 {
		t.Errorf("the victim's flow has %d records after the flood, want 1: the attacker erased it from the audit trail", victimRecs)
	}
	if attackerRecs > DefaultUserQuota {
		t.Errorf("the attacker held %d flows, more than the quota of %d", attackerRecs, DefaultUserQuota)
	}
	if passed > DefaultUserQuota {
		t.Errorf("%d of the attacker's new flows passed, more than the quota of %d: untracked traffic", passed, DefaultUserQuota)
	}
}

// A user at their quota loses their own least recently active flows, in
// the log (end "evicted"), and may start new ones again; nobody else's
// flows move.
func TestQuotaEvictsOwnOldest(t *testing.T) {
	const quota = 64
	f := loadT(t, Options{l3Offset: 14, FlowTableSize: 1024, UserQuota: quota})
	const victim, attacker = 7, 666
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.SetPeer(netip.MustParseAddr("10.100.0.2"), victim, 0))
	must(f.SetPeer(netip.MustParseAddr("10.100.0.66"), attacker, 0))
	events, err := f.Events()
	must(err)
	defer events.Close()
	victimFrame := ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.5", 6, tcp(40000, 5432, 0, 100), nil, 0))
	run(t, f.objs.FlowsIngress, victimFrame, 0)

	buf := ether(ethIPv4, ipv4("10.100.0.66", "10.64.0.0", 6, tcp(1, 1, 0, 0), nil, 0))
	send := func(i int) uint32 { return run(t, f.objs.FlowsIngress, floodFrame(buf, i), 0) }
	for i := range quota {
		if got := send(i); got != tcxNext {
			t.Fatalf("flow %d within the quota returned %d", i, int32(got))
		}
	}
	// The first 8 flows stay busy: they are not the ones to go.
	for i := range 8 {
		send(i)
	}
	if got := send(quota); got != tcxDrop {
		t.Errorf("flow beyond the quota returned %d, want drop", int32(got))
	}
	if e := readEvent(t, events, EventQuota); e.UserID != attacker {
		t.Errorf("quota event for user %d, want %d", e.UserID, attacker)
	}
	u, err := f.UserFlows(attacker)
	must(err)
	if u.Live != quota || u.Quota != quota || u.OverQuota != 1 {
		t.Errorf("attacker = %+v; want %d live of %d, 1 refused", u, quota, quota)
	}

	var out strings.Builder
	l := NewFlowLog(f, &out, FlowLogOptions{})
	n, err := l.Evict(attacker, 16)
	if err != nil || n != 16 {
		t.Fatalf("Evict = %d, %v; want 16", n, err)
	}
	for r, err := range ReadFlowLog(strings.NewReader(out.String())) {
		must(err)
		if r.UserID != attacker || r.End != EndEvicted {
			t.Errorf("evicted %+v", r)
		}
		if p := *r.DstPort; p < 8 {
			t.Errorf("evicted busy flow %d", p)
		}
	}
	if u, _ := f.UserFlows(attacker); u.Live != quota-16 {
		t.Errorf("attacker holds %d flows after eviction, want %d", u.Live, quota-16)
	}
	if got := send(quota); got != tcxNext {
		t.Errorf("new flow after eviction returned %d, want pass", int32(got))
	}
	if _, ok, _ := f.TakeFlow(mustKey("10.100.0.2", "10.10.1.5", 6, 40000, 5432)); !ok {
		t.Error("the victim's flow is gone")
	}
	if u, _ := f.UserFlows(victim); u.Live != 0 {
		t.Errorf("victim holds %d flows after their only one was taken", u.Live)
	}
}

// Flows reads the table in batches (the flow log and the reaper scan it
// whole): every flow exactly once across batch boundaries.
func TestFlowsReadsInBatches(t *testing.T) {
	const n = 2*flowBatch + 100
	f := loadT(t, Options{l3Offset: 14, FlowTableSize: 4 * flowBatch, UserQuota: 4 * flowBatch})
	if err := f.SetPeer(netip.MustParseAddr("10.100.0.66"), 9, 0); err != nil {
		t.Fatal(err)
	}
	buf := ether(ethIPv4, ipv4("10.100.0.66", "10.64.0.0", 6, tcp(1, 1, 0, 0), nil, 0))
	for i := range n {
		if got := run(t, f.objs.FlowsIngress, floodFrame(buf, i), 0); got != tcxNext {
			t.Fatalf("flow %d returned %d", i, int32(got))
		}
	}
	keys := make([]flowsFlowKey, flowBatch)
	vals := make([]flowsFlowValue, flowBatch)
	var cursor ebpf.MapBatchCursor
	if _, err := f.objs.Flows.BatchLookup(&cursor, keys, vals, nil); err != nil {
		t.Fatalf("this kernel refuses batch lookups on the flow table (Flows falls back to one at a time): %v", err)
	}
	one := 0 // the fallback reads them all too
	f.iterateFlows(func(Flow, error) bool { one++; return true }, newMonoClock(), nil)
	seen := map[FlowKey]bool{}
	for fl, err := range f.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		if seen[fl.FlowKey] {
			t.Fatalf("flow %v read twice", fl.FlowKey)
		}
		seen[fl.FlowKey] = true
	}
	if len(seen) != n || one != n {
		t.Errorf("Flows read %d flows, one at a time %d, want %d", len(seen), one, n)
	}
}
