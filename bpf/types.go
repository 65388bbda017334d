// Package bpf filters and accounts the traffic of a gateway's WireGuard
// interfaces per user with eBPF (tcx programs, Linux >= 6.6).
//
// The program (flows.c, compiled into the committed flows_bpfel.o) runs on
// tcx ingress of each group interface, i.e. on every packet a client sends
// through the tunnel. It drops packets whose source address is no
// registered peer, applies the peer's policy (an allow list narrower than
// the group's, or none), and accounts each 5-tuple in a flow table in which
// each user holds at most a quota of flows; a companion program on egress
// adds the replies. New flows, denied flows, unknown sources, unparsed IPv6
// packets and users reaching their quota are reported on a ring buffer
// (Filter.Events).
//
// The kernel never removes a flow: user space does (FlowLog), and writes it
// first. A user at their quota has new flows refused until FlowLog.Evict
// removed (and wrote) their least recently active ones; the table holds
// every user's quota, so nobody can push another user's flows out.
//
// Load the objects once with Load, Attach them to each interface, keep
// peers and policies in sync with SetPeer/DeletePeer and SetPolicy, and read
// flows with Flows or write them as JSON lines with FlowLog. Everything is
// removed from the kernel on Close (and, because nothing is pinned, when
// the process dies).
package bpf

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// ErrNotSupported is returned on platforms without eBPF tcx (everything but
// Linux).
var ErrNotSupported = errors.New("bpf: eBPF flow filtering needs Linux >= 6.6 (tcx)")

// ErrClosed is returned by EventReader.Read after Close.
var ErrClosed = errors.New("bpf: event reader closed")

// ErrTimeout is returned by EventReader.Read when the deadline passed.
var ErrTimeout = errors.New("bpf: event read timed out")

// Verdict is what the program decided for a packet or flow.
type Verdict uint8

// Keep in sync with enum verdict in flows.c (checked by a test).
const (
	VerdictAllow         Verdict = 1
	VerdictDeny          Verdict = 2 // destination outside the user's policy
	VerdictUnknownSource Verdict = 3 // source is no registered peer
	// VerdictUnparsed: an IPv6 packet whose extension headers do not lead
	// to its transport header within 6 headers (or are cut off); dropped
	// unless Options.AllowUnparsed.
	VerdictUnparsed Verdict = 4
	// VerdictOverQuota: a new flow beyond the user's quota; dropped.
	VerdictOverQuota Verdict = 5
)

func (v Verdict) String() string {
	switch v {
	case VerdictAllow:
		return "allow"
	case VerdictDeny:
		return "deny"
	case VerdictUnknownSource:
		return "unknown_source"
	case VerdictUnparsed:
		return "unparsed"
	case VerdictOverQuota:
		return "over_quota"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// EventKind says why the program reported an Event.
type EventKind uint8

// Keep in sync with enum event_kind in flows.c (checked by a test).
const (
	EventNewFlow       EventKind = 1 // first packet of an allowed flow
	EventDenied        EventKind = 2 // first packet of a denied flow
	EventUnknownSource EventKind = 3 // a packet from an unregistered source (at most 10/s per CPU)
	// EventUnparsed: an unparsed IPv6 packet of a registered user (at most
	// 10/s per user); Verdict says whether it was dropped (VerdictUnparsed)
	// or let through (VerdictAllow), Proto is the header the walk stopped
	// at.
	EventUnparsed EventKind = 4
	// EventQuota: a user holds 7/8 of their quota of flows or more (at
	// most 100/s per user); Verdict is VerdictOverQuota if this packet's
	// new flow was refused. Time to evict some of their flows.
	EventQuota EventKind = 5
)

func (k EventKind) String() string {
	switch k {
	case EventNewFlow:
		return "new_flow"
	case EventDenied:
		return "denied"
	case EventUnknownSource:
		return "unknown_source"
	case EventUnparsed:
		return "unparsed"
	case EventQuota:
		return "quota"
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// IP protocol numbers the flow key interprets.
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// FlowKey is the 5-tuple of a flow in the client's direction (client
// address first). For ICMP and ICMPv6, SrcPort is the echo identifier (0 for
// other messages) and DstPort is type<<8|code, with echo replies folded onto
// their request's type.
type FlowKey struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
}

// IsICMP reports whether the key is an ICMP or ICMPv6 flow.
func (k FlowKey) IsICMP() bool { return k.Proto == ProtoICMP || k.Proto == ProtoICMPv6 }

// HasPorts reports whether SrcPort and DstPort are transport ports.
func (k FlowKey) HasPorts() bool {
	switch k.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoUDPLite:
		return true
	}
	return false
}

// ICMPType and ICMPCode decode DstPort of an ICMP key.
func (k FlowKey) ICMPType() uint8 { return uint8(k.DstPort >> 8) }

// ICMPCode: see ICMPType.
func (k FlowKey) ICMPCode() uint8 { return uint8(k.DstPort) }

func (k FlowKey) String() string {
	switch {
	case k.HasPorts():
		return fmt.Sprintf("%s %s -> %s", ProtoName(k.Proto), netip.AddrPortFrom(k.Src, k.SrcPort), netip.AddrPortFrom(k.Dst, k.DstPort))
	case k.IsICMP():
		return fmt.Sprintf("%s %s -> %s type %d code %d id %d", ProtoName(k.Proto), k.Src, k.Dst, k.ICMPType(), k.ICMPCode(), k.SrcPort)
	}
	return fmt.Sprintf("%s %s -> %s", ProtoName(k.Proto), k.Src, k.Dst)
}

// ProtoName names an IP protocol the way flow logs write it ("tcp", "udp",
// "icmp", "icmpv6", "sctp", "udplite", otherwise the number).
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	case ProtoSCTP:
		return "sctp"
	case ProtoUDPLite:
		return "udplite"
	}
	return strconv.Itoa(int(p))
}

// Flow is one entry of the kernel's flow table. Packets and Bytes are what
// the client sent (IP bytes, headers included; coalesced GSO packets count
// as the segments they stand for), ReplyPackets and ReplyBytes what came
// back to it.
type Flow struct {
	FlowKey
	UserID uint32
	// Interface the flow entered on ("" if it is no longer attached).
	Interface                string
	Packets, Bytes           uint64
	ReplyPackets, ReplyBytes uint64
	FirstSeen, LastSeen      time.Time
	Verdict                  Verdict
}

// Event is one report from the program's ring buffer.
type Event struct {
	Kind    EventKind
	Verdict Verdict
	// UserID is 0 for EventUnknownSource.
	UserID    uint32
	Interface string
	FlowKey
	// Bytes of the packet that caused the event.
	Bytes uint32
	Time  time.Time
}

// Counter is a packet and byte count.
type Counter struct {
	Packets, Bytes uint64
}

// Counters are the program's totals since Load, summed over CPUs.
type Counters struct {
	Allowed, Denied, UnknownSource Counter
	// NotIP: packets that were not IPv4/IPv6 or whose IP header was cut
	// off; dropped (a TUN device carries nothing else).
	NotIP Counter
	// EventsLost: events dropped because the ring buffer was full.
	EventsLost Counter
	// FlowsFailed: packets of new flows that could not be entered in the
	// flow table (it was full); dropped.
	FlowsFailed Counter
	// Replies: egress packets matched to a flow.
	Replies Counter
	// Malformed: IPv6 packets with IPv4-mapped addresses, dropped (they
	// would alias IPv4 peers and policy entries).
	Malformed Counter
	// Unparsed: IPv6 packets of registered users whose extension headers
	// hide the transport header (dropped unless Options.AllowUnparsed).
	Unparsed Counter
	// OverQuota: packets of new flows refused because their user held
	// their quota of flows.
	OverQuota Counter
}

// UserFlows is a user's standing in the flow table.
type UserFlows struct {
	// Live is how many flows the user holds in the table now, Quota how
	// many they may.
	Live, Quota uint64
	// OverQuota counts their new-flow packets refused at the quota,
	// Unparsed their unparsed IPv6 packets, since Load.
	OverQuota, Unparsed uint64
}

// FlowTable is what FlowLog reads; *Filter implements it.
type FlowTable interface {
	// Flows returns a snapshot of the flow table.
	Flows() iter.Seq2[Flow, error]
	// TakeFlow removes the flow with key k and returns its final counts;
	// ok is false if it was already gone.
	TakeFlow(k FlowKey) (f Flow, ok bool, err error)
}

// Options tune Load.
type Options struct {
	// FlowTableSize is the number of flows tracked at once (default
	// 131072). Size it for every user's quota (TableSizeFor): when it is
	// full, new flows are dropped (FlowsFailed), as nothing is evicted
	// behind the flow log's back. Entries are allocated as flows start.
	FlowTableSize uint32
	// UserQuota is how many flows one user may hold in the table at once
	// (default DefaultUserQuota). A new flow beyond it is dropped until
	// user space evicted (and logged) some of theirs (FlowLog.Evict).
	UserQuota uint32
	// AllowUnparsed lets IPv6 packets whose transport header the program
	// cannot reach through (logged with the header type as protocol and
	// no ports) instead of dropping them. Either way they are counted and
	// reported (EventUnparsed).
	AllowUnparsed bool

	// l3Offset is where the IP header starts: 0 on TUN devices; 14 runs
	// the program on Ethernet frames (BPF_PROG_TEST_RUN in tests).
	l3Offset uint32
}

// DefaultUserQuota is the flows one user may hold at once by default.
const DefaultUserQuota = 4096

// TableSizeFor is the flow table that holds users users' quota of flows
// each (users: how many peers the address pools can hold), capped at limit
// (0: no cap) and at least 1024. capped reports whether the cap bit: then
// the quota no longer guarantees room for everyone at once.
func TableSizeFor(users, quota, limit uint64) (size uint32, capped bool) {
	n := users * quota
	if quota != 0 && n/quota != users {
		n = ^uint64(0)
	}
	if limit != 0 && n > limit {
		n, capped = limit, true
	}
	n = min(n, uint64(^uint32(0)>>1))
	return uint32(max(n, 1024)), capped
}

// MaxPortRanges is how many port ranges one policy entry holds after the
// ranges of its covering prefixes are folded in (flows.c MAX_PORT_RANGES).
const MaxPortRanges = 16

// PortRange lets packets of Proto to destination ports Lo-Hi (inclusive)
// through; Proto ProtoICMP (Lo and Hi 0) stands for every ICMP and ICMPv6
// packet.
type PortRange struct {
	Proto  uint8
	Lo, Hi uint16
}

func (r PortRange) String() string {
	name := map[uint8]string{ProtoICMP: "icmp", ProtoTCP: "tcp", ProtoUDP: "udp"}[r.Proto]
	if name == "" {
		name = "proto" + strconv.Itoa(int(r.Proto))
	}
	switch {
	case r.Proto == ProtoICMP:
		return name
	case r.Lo == r.Hi:
		return name + "/" + strconv.Itoa(int(r.Lo))
	}
	return name + "/" + strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// Allow is one destination of a policy: Prefix, for every protocol and
// port when Ports is empty, else only for those.
type Allow struct {
	Prefix netip.Prefix
	Ports  []PortRange
}

func (a Allow) String() string {
	s := a.Prefix.String()
	for _, r := range a.Ports {
		s += " " + r.String()
	}
	return s
}

// MergePorts returns rs sorted, with overlapping and adjacent ranges of
// one protocol joined; nil stays nil (every port).
func MergePorts(rs []PortRange) []PortRange {
	if len(rs) == 0 {
		return nil
	}
	s := slices.Clone(rs)
	for i := range s {
		if s[i].Proto == ProtoICMP {
			s[i].Lo, s[i].Hi = 0, 0
		}
	}
	slices.SortFunc(s, func(a, b PortRange) int {
		if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
			return c
		}
		return cmp.Compare(a.Lo, b.Lo)
	})
	out := s[:1]
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if r.Proto == last.Proto && uint32(r.Lo) <= uint32(last.Hi)+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// FoldPolicy makes an allow list complete under longest-prefix matching:
// each prefix's ports become the union of its own and those of every
// prefix of its family covering it, and a prefix any of which allows
// every port allows every port. Duplicate prefixes are joined. The
// result is sorted by family, then address and length.
func FoldPolicy(allowed []Allow) []Allow {
	type acc struct {
		all   bool
		ports []PortRange
	}
	m := map[netip.Prefix]*acc{}
	var order []netip.Prefix
	for _, a := range allowed {
		p := canonPrefix(a.Prefix)
		e := m[p]
		if e == nil {
			e = &acc{}
			m[p] = e
			order = append(order, p)
		}
		if len(a.Ports) == 0 {
			e.all = true
		}
		e.ports = append(e.ports, a.Ports...)
	}
	out := make([]Allow, 0, len(order))
	for _, p := range order {
		all, ports := false, []PortRange(nil)
		for _, q := range order {
			if q.Addr().Is4() != p.Addr().Is4() || q.Bits() > p.Bits() || !q.Contains(p.Addr()) {
				continue
			}
			all = all || m[q].all
			ports = append(ports, m[q].ports...)
		}
		a := Allow{Prefix: p}
		if !all {
			a.Ports = MergePorts(ports)
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Allow) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
	})
	return out
}

// canonPrefix masks p and writes IPv4-mapped IPv6 prefixes as IPv4.
func canonPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}
