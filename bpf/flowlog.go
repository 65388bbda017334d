package bpf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"sync"
	"time"
)

// FlowRecord is one line of the flow log (JSON). A flow is written when it
// starts (End "start", from the program's new-flow event: best effort, a
// full ring buffer loses some, counted in Counters.EventsLost) and once it
// ends: idle for FlowLogOptions.IdleTimeout, open for longer than
// ActiveTimeout (then it continues as a new record), evicted because its
// user reached their quota, or at shutdown. Every flow that entered the
// kernel's table gets its end record: only the flow log removes entries.
// An unparsed IPv6 packet is a record of its own (End "unparsed").
type FlowRecord struct {
	// Time the record was written.
	Time time.Time `json:"time"`
	// User is the name from FlowLogOptions.UserName, or the id in decimal
	// when no name is known; UserID is the id the filter knows the user by.
	User      string `json:"user"`
	UserID    uint32 `json:"user_id"`
	Interface string `json:"interface,omitempty"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	Proto     string `json:"proto"`
	// Ports for tcp, udp, sctp and udplite.
	SrcPort *uint16 `json:"sport,omitempty"`
	DstPort *uint16 `json:"dport,omitempty"`
	// ICMP type and code, and the echo identifier, for icmp and icmpv6.
	ICMPType *uint8  `json:"icmp_type,omitempty"`
	ICMPCode *uint8  `json:"icmp_code,omitempty"`
	ICMPID   *uint16 `json:"icmp_id,omitempty"`
	// Packets and Bytes (IP, headers included) from the client; Reply*
	// back to it.
	Packets      uint64    `json:"packets"`
	Bytes        uint64    `json:"bytes"`
	ReplyPackets uint64    `json:"reply_packets"`
	ReplyBytes   uint64    `json:"reply_bytes"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	// Verdict is "allow" or "deny" (denied flows were dropped), or
	// "unparsed" for an unparsed IPv6 packet that was dropped.
	Verdict string `json:"verdict"`
	// End says why the record was written: "start", "idle", "active",
	// "evicted", "shutdown" or "unparsed".
	End string `json:"end"`
}

// Reasons a flow record is written.
const (
	EndStart    = "start"    // the flow's first packet (counts are that packet's)
	EndIdle     = "idle"     // no packet for IdleTimeout
	EndActive   = "active"   // open for ActiveTimeout; continues in a new record
	EndEvicted  = "evicted"  // removed early: its user reached their quota
	EndShutdown = "shutdown" // the filter stopped
	EndUnparsed = "unparsed" // one IPv6 packet whose transport header was not reached
)

// NewFlowRecord builds the log record of f.
func NewFlowRecord(f Flow, user, end string, now time.Time) FlowRecord {
	r := FlowRecord{
		Time: now.UTC(), User: user, UserID: f.UserID, Interface: f.Interface,
		Src: f.Src.String(), Dst: f.Dst.String(), Proto: ProtoName(f.Proto),
		Packets: f.Packets, Bytes: f.Bytes, ReplyPackets: f.ReplyPackets, ReplyBytes: f.ReplyBytes,
		FirstSeen: f.FirstSeen.UTC(), LastSeen: f.LastSeen.UTC(), Verdict: f.Verdict.String(), End: end,
	}
	switch {
	case f.HasPorts():
		sp, dp := f.SrcPort, f.DstPort
		r.SrcPort, r.DstPort = &sp, &dp
	case f.IsICMP():
		ty, code, id := f.ICMPType(), f.ICMPCode(), f.SrcPort
		r.ICMPType, r.ICMPCode, r.ICMPID = &ty, &code, &id
	}
	return r
}

// ReadFlowLog yields the records of a flow log, one per line. A line that
// is not a record is an error naming its line number.
func ReadFlowLog(r io.Reader) iter.Seq2[FlowRecord, error] {
	return func(yield func(FlowRecord, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var rec FlowRecord
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rec); err != nil {
				yield(FlowRecord{}, fmt.Errorf("flow log line %d: %w", n, err))
				return
			}
			if rec.Src == "" || rec.Dst == "" || rec.Proto == "" || rec.Verdict == "" {
				yield(FlowRecord{}, fmt.Errorf("flow log line %d: missing src, dst, proto or verdict", n))
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(FlowRecord{}, fmt.Errorf("flow log: %w", err))
		}
	}
}

// FlowLogOptions tune FlowLog.
type FlowLogOptions struct {
	// IdleTimeout: a flow without packets for this long is written and
	// removed from the table (default 30s).
	IdleTimeout time.Duration
	// ActiveTimeout: a flow older than this is written and removed even
	// if busy; its next packet starts a new record (default 5m).
	ActiveTimeout time.Duration
	// Interval between scans of the table (default IdleTimeout/3, at
	// most 10s).
	Interval time.Duration
	// UserName returns the name logged for a user id (optional).
	UserName func(userID uint32) string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// FlowLog writes ended flows of a FlowTable as JSON lines to w and removes
// them from the table, which keeps the kernel's table for live flows.
type FlowLog struct {
	table FlowTable
	opts  FlowLogOptions

	scan sync.Mutex // one scan (Flush, Evict) at a time
	wmu  sync.Mutex // serialises writes to w
	w    io.Writer
}

// NewFlowLog returns a flow log over table writing to w.
func NewFlowLog(table FlowTable, w io.Writer, opts FlowLogOptions) *FlowLog {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.ActiveTimeout <= 0 {
		opts.ActiveTimeout = 5 * time.Minute
	}
	if opts.Interval <= 0 {
		opts.Interval = min(opts.IdleTimeout/3, 10*time.Second)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &FlowLog{table: table, w: w, opts: opts}
}

// Flush writes and removes the flows that ended (all of them if all is
// set, as at shutdown) and returns how many it wrote. Records go out in one
// write per Flush, so a reader never sees half a line.
func (l *FlowLog) Flush(all bool) (int, error) {
	l.scan.Lock()
	defer l.scan.Unlock()
	now := l.opts.Now()
	var done []ended
	for f, err := range l.table.Flows() {
		if err != nil {
			return 0, err
		}
		switch {
		case all:
			done = append(done, ended{f.FlowKey, EndShutdown})
		case now.Sub(f.LastSeen) >= l.opts.IdleTimeout:
			done = append(done, ended{f.FlowKey, EndIdle})
		case now.Sub(f.FirstSeen) >= l.opts.ActiveTimeout:
			done = append(done, ended{f.FlowKey, EndActive})
		}
	}
	return l.take(done, now)
}

type ended struct {
	key FlowKey
	end string
}

// take removes the flows done from the table and writes them, in one
// write, so a reader never sees half a line.
func (l *FlowLog) take(done []ended, now time.Time) (int, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	n := 0
	var firstErr error
	for _, d := range done {
		// Taken, not just read: the final counts, and the kernel starts
		// a fresh entry for any later packet.
		f, ok, err := l.table.TakeFlow(d.key)
		if err != nil {
			firstErr = err
			break
		}
		if !ok {
			continue
		}
		if err := enc.Encode(NewFlowRecord(f, l.userName(f.UserID), d.end, now)); err != nil {
			firstErr = fmt.Errorf("flow log: encode %s: %w", f.FlowKey, err)
			break
		}
		n++
	}
	// What was taken is written even if a later take failed: it is no
	// longer in the table.
	if err := l.write(buf.Bytes()); err != nil {
		return 0, err
	}
	return n, firstErr
}

func (l *FlowLog) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		return fmt.Errorf("flow log: write: %w", err)
	}
	return nil
}

func (l *FlowLog) userName(id uint32) string {
	user := ""
	if l.opts.UserName != nil {
		user = l.opts.UserName(id)
	}
	if user == "" && id != 0 {
		user = strconv.FormatUint(uint64(id), 10)
	}
	return user
}

// Evict removes user's n least recently active flows from the table and
// writes them (end "evicted"); it returns how many it wrote. Call it when
// the user nears their quota (EventQuota): only their own flows go, the
// ones they use least.
func (l *FlowLog) Evict(user uint32, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	l.scan.Lock()
	defer l.scan.Unlock()
	now := l.opts.Now()
	type cand struct {
		key  FlowKey
		last time.Time
	}
	var mine []cand
	for f, err := range l.table.Flows() {
		if err != nil {
			return 0, err
		}
		if f.UserID == user {
			mine = append(mine, cand{f.FlowKey, f.LastSeen})
		}
	}
	slices.SortFunc(mine, func(a, b cand) int { return a.last.Compare(b.last) })
	done := make([]ended, 0, min(n, len(mine)))
	for _, c := range mine[:min(n, len(mine))] {
		done = append(done, ended{c.key, EndEvicted})
	}
	return l.take(done, now)
}

// Record writes the record an event calls for: a flow's start (EventNewFlow,
// EventDenied; the counts are its first packet's) or an unparsed packet
// (EventUnparsed). Other events write nothing. It does not wait for a scan.
func (l *FlowLog) Record(e Event) error {
	var end string
	switch e.Kind {
	case EventNewFlow, EventDenied:
		end = EndStart
	case EventUnparsed:
		end = EndUnparsed
	default:
		return nil
	}
	f := Flow{FlowKey: e.FlowKey, UserID: e.UserID, Interface: e.Interface, Packets: 1, Bytes: uint64(e.Bytes),
		FirstSeen: e.Time, LastSeen: e.Time, Verdict: e.Verdict}
	b, err := json.Marshal(NewFlowRecord(f, l.userName(e.UserID), end, l.opts.Now()))
	if err != nil {
		return fmt.Errorf("flow log: encode %s: %w", e.FlowKey, err)
	}
	return l.write(append(b, '\n'))
}

// Run flushes ended flows every Interval until ctx is done, then writes
// every remaining flow (end "shutdown") and returns. Errors of a single
// scan go to onError (if set) and the loop goes on.
func (l *FlowLog) Run(ctx context.Context, onError func(error)) error {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_, err := l.Flush(true)
			return err
		case <-t.C:
			if _, err := l.Flush(false); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}
