package bpf

import (
	"bytes"
	"encoding/json"
	"iter"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// memTable is a FlowTable in memory, for the flow log's own logic
// (timeouts, record format) on every platform; the lab tests run it on
// the kernel's table.
type memTable struct{ flows map[FlowKey]Flow }

func (m *memTable) Flows() iter.Seq2[Flow, error] {
	return func(yield func(Flow, error) bool) {
		for _, f := range m.flows {
			if !yield(f, nil) {
				return
			}
		}
	}
}

func (m *memTable) TakeFlow(k FlowKey) (Flow, bool, error) {
	f, ok := m.flows[k]
	delete(m.flows, k)
	return f, ok, nil
}

func TestFlowLogTimeouts(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	key := func(dport uint16) FlowKey {
		return FlowKey{Src: netip.MustParseAddr("10.100.0.2"), Dst: netip.MustParseAddr("10.10.1.1"), Proto: ProtoTCP, SrcPort: 40000, DstPort: dport}
	}
	tbl := &memTable{flows: map[FlowKey]Flow{}}
	add := func(k FlowKey, first, last time.Duration, user uint32) {
		tbl.flows[k] = Flow{FlowKey: k, UserID: user, Packets: 10, Bytes: 5000, FirstSeen: now.Add(-first), LastSeen: now.Add(-last), Verdict: VerdictAllow}
	}
	add(key(1), 40*time.Second, 31*time.Second, 7) // idle
	add(key(2), 6*time.Minute, time.Second, 7)     // active too long
	add(key(3), 10*time.Second, time.Second, 8)    // live
	var out bytes.Buffer
	l := NewFlowLog(tbl, &out, FlowLogOptions{
		Now:      func() time.Time { return now },
		UserName: func(id uint32) string { return map[uint32]string{7: "alice"}[id] },
	})
	n, err := l.Flush(false)
	if err != nil || n != 2 {
		t.Fatalf("Flush = %d, %v; want 2 records", n, err)
	}
	got := map[uint16]FlowRecord{}
	for r, err := range ReadFlowLog(&out) {
		if err != nil {
			t.Fatal(err)
		}
		got[*r.DstPort] = r
	}
	if r := got[1]; r.End != EndIdle || r.User != "alice" || r.Packets != 10 || r.Bytes != 5000 || r.Proto != "tcp" || *r.SrcPort != 40000 {
		t.Errorf("idle record = %+v", r)
	}
	if r := got[2]; r.End != EndActive {
		t.Errorf("active record = %+v", r)
	}
	if _, ok := tbl.flows[key(3)]; !ok || len(tbl.flows) != 1 {
		t.Errorf("table after Flush: %v; want only the live flow", tbl.flows)
	}
	out.Reset()
	if n, err := l.Flush(true); err != nil || n != 1 {
		t.Fatalf("Flush(all) = %d, %v", n, err)
	}
	var r FlowRecord
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	// No name known: the id stands in.
	if r.End != EndShutdown || r.User != "8" || r.UserID != 8 {
		t.Errorf("shutdown record = %+v", r)
	}
}

func TestFlowRecordICMP(t *testing.T) {
	f := Flow{FlowKey: FlowKey{Src: netip.MustParseAddr("fd00::2"), Dst: netip.MustParseAddr("fd10::1"), Proto: ProtoICMPv6, SrcPort: 99, DstPort: 128 << 8}, Verdict: VerdictDeny}
	b, err := json.Marshal(NewFlowRecord(f, "bob", EndIdle, time.Unix(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"proto":"icmpv6"`, `"icmp_type":128`, `"icmp_code":0`, `"icmp_id":99`, `"verdict":"deny"`} {
		if !strings.Contains(s, want) {
			t.Errorf("record %s lacks %s", s, want)
		}
	}
	if strings.Contains(s, "sport") {
		t.Errorf("ICMP record has ports: %s", s)
	}
}

func TestReadFlowLogErrors(t *testing.T) {
	good := `{"time":"2026-12-01T10:00:00Z","user":"alice","user_id":7,"src":"10.100.0.2","dst":"10.10.1.1","proto":"udp","sport":1,"dport":2,"packets":1,"bytes":28,"reply_packets":0,"reply_bytes":0,"first_seen":"2026-12-01T10:00:00Z","last_seen":"2026-12-01T10:00:00Z","verdict":"allow","end":"idle"}`
	for _, c := range []struct{ in, want string }{
		{good + "\n\n" + good + "\n", ""},
		{good + "\nnot json\n", "line 2"},
		{`{"src":"a","dst":"b","proto":"tcp","verdict":"allow","colour":"red"}`, `unknown field "colour"`},
		{`{"src":"a","proto":"tcp","verdict":"allow"}`, "line 1: missing"},
	} {
		var err error
		n := 0
		for _, e := range ReadFlowLog(strings.NewReader(c.in)) {
			if e != nil {
				err = e
				break
			}
			n++
		}
		switch {
		case c.want == "" && (err != nil || n != 2):
			t.Errorf("%q: %d records, %v", c.in, n, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
}

// FuzzReadFlowLog: any input yields records or an error, never a panic,
// and every record survives writing and reading back unchanged.
func FuzzReadFlowLog(f *testing.F) {
	f.Add(`{"time":"2026-12-01T10:00:00Z","user":"alice","user_id":7,"interface":"wg0","src":"10.100.0.2","dst":"10.10.1.1","proto":"icmp","icmp_type":8,"icmp_code":0,"icmp_id":3,"packets":3,"bytes":252,"reply_packets":3,"reply_bytes":252,"first_seen":"2026-12-01T10:00:00Z","last_seen":"2026-12-01T10:00:01Z","verdict":"allow","end":"idle"}`)
	f.Add("{}\n{\"src\":1}")
	f.Add(`{"src":"a","dst":"b","proto":"tcp","verdict":"deny","sport":65535,"dport":0}`)
	f.Fuzz(func(t *testing.T, in string) {
		for r, err := range ReadFlowLog(strings.NewReader(in)) {
			if err != nil {
				return
			}
			if r.Src == "" || r.Dst == "" || r.Proto == "" || r.Verdict == "" {
				t.Fatalf("record without required fields: %+v", r)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			for back, err := range ReadFlowLog(bytes.NewReader(b)) {
				if err != nil {
					t.Fatalf("re-read %s: %v", b, err)
				}
				if !reflect.DeepEqual(back, r) {
					t.Fatalf("round trip changed the record:\n%+v\n%+v", r, back)
				}
			}
		}
	})
}

func TestTableSizeFor(t *testing.T) {
	for _, c := range []struct {
		users, quota, limit uint64
		size                uint32
		capped              bool
	}{
		{253, 4096, 2097152, 253 * 4096, false},
		{65533, 4096, 2097152, 2097152, true},
		{1, 16, 0, 1024, false}, // at least 1024
		{1 << 40, 1 << 40, 0, 1<<31 - 1, false},
	} {
		size, capped := TableSizeFor(c.users, c.quota, c.limit)
		if size != c.size || capped != c.capped {
			t.Errorf("TableSizeFor(%d, %d, %d) = %d, %v; want %d, %v", c.users, c.quota, c.limit, size, capped, c.size, c.capped)
		}
	}
}
