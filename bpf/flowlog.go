package bpf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strconv"
	"sync"
	"time"
)

// FlowRecord is one line of the flow log (JSON). A flow is written once it
// ends: idle for FlowLogOptions.IdleTimeout, open for longer than
// ActiveTimeout (then it continues as a new record), or at shutdown.
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
	// Verdict is "allow" or "deny" (denied flows were dropped).
	Verdict string `json:"verdict"`
	// End says why the record was written: "idle", "active" or "shutdown".
	End string `json:"end"`
}

// Reasons a flow record is written.
const (
	EndIdle     = "idle"
	EndActive   = "active"
	EndShutdown = "shutdown"
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
// them from the table, which keeps the kernel's LRU table for live flows.
type FlowLog struct {
	table FlowTable
	opts  FlowLogOptions

	mu sync.Mutex // one scan at a time; serialises writes to w
	w  io.Writer
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
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	type ended struct {
		key FlowKey
		end string
	}
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
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	n := 0
	for _, d := range done {
		// Taken, not just read: the final counts, and the kernel starts
		// a fresh entry for any later packet.
		f, ok, err := l.table.TakeFlow(d.key)
		if err != nil {
			return n, err
		}
		if !ok {
			continue
		}
		user := ""
		if l.opts.UserName != nil {
			user = l.opts.UserName(f.UserID)
		}
		if user == "" && f.UserID != 0 {
			user = strconv.FormatUint(uint64(f.UserID), 10)
		}
		if err := enc.Encode(NewFlowRecord(f, user, d.end, now)); err != nil {
			return n, fmt.Errorf("flow log: encode %s: %w", f.FlowKey, err)
		}
		n++
	}
	if buf.Len() > 0 {
		if _, err := l.w.Write(buf.Bytes()); err != nil {
			return 0, fmt.Errorf("flow log: write: %w", err)
		}
	}
	return n, nil
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
