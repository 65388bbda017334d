//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// ClearPath per-user filter and flow accounting for a gateway's WireGuard
// interface (a wireguard-go TUN device: raw IP packets, no link-layer
// header).
//
// flows_ingress runs on tcx ingress, i.e. on every packet a client sent
// through the tunnel:
//   1. the source address must be a registered peer (map peers), otherwise
//      the packet is dropped and counted (spoofed or not yet registered);
//   2. the destination is looked up in the peer's policy (LPM trie policy);
//      a policy without entries allows everything (the group's routing table
//      still isolates groups), otherwise the longest matching entry decides:
//      deny, allow everything, or allow only its port ranges (protocol and
//      destination port; "icmp" for ICMP and ICMPv6). User space folds the
//      ranges of covering prefixes into each entry, so the longest match
//      is complete. A later fragment (no transport header) passes an entry
//      that has a range of its protocol: its first fragment, which carries
//      the ports, was judged;
//   3. the 5-tuple is accounted in the hash flows, and the first packet of
//      a flow emits a "new flow" or "denied" event on the ring buffer.
// What is not an IP packet, and IPv6 carrying IPv4-mapped addresses (which
// would alias IPv4 peers and policies), is dropped and counted.
//
// The flow table is a plain hash, not an LRU: the kernel never evicts an
// entry, only user space removes one (and writes it to the flow log first).
// Each user may hold at most their quota of entries (user_limits, or
// default_quota): a new flow beyond it is dropped and counted, and from
// 7/8 of it on the program raises a quota event so that user space
// evicts that user's least recently active flows (writing them). The table
// is sized for every possible user's quota, so one user cannot push
// another's flows out.
//
// An IPv6 packet whose extension-header chain does not reach its transport
// header within MAX_EXT_HEADERS headers (or is cut off) is unparsed: it is
// counted per user, reported (at most 10 events/s per user) and dropped,
// unless allow_unparsed is set.
//
// flows_egress runs on tcx egress (packets going back to clients) and only
// adds reply packets and bytes to flows the client started; it never drops.
//
// Regenerate the Go bindings and objects with `make bpf` (needs clang).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// tcx return codes (linux/bpf.h >= 6.6; Debian 12's headers are older).
#ifndef TCX_NEXT
#define TCX_NEXT -1
#define TCX_PASS 0
#define TCX_DROP 2
#endif

// Offset of the IP header in the packet: 0 on TUN devices. The Go side sets
// 14 only to run the program on Ethernet frames in BPF_PROG_TEST_RUN.
const volatile __u32 l3_offset = 0;

// Flows a user may hold in the table when user_limits has no entry for
// them (the Go side sets both).
const volatile __u32 default_quota = 4096;

// Non-zero: unparsed IPv6 packets are counted and reported but let
// through (judged by their addresses, protocol = the last header type).
const volatile __u32 allow_unparsed = 0;

// Extension headers walked before an IPv6 packet counts as unparsed.
#define MAX_EXT_HEADERS 6

enum verdict {
	VERDICT_ALLOW = 1,
	VERDICT_DENY = 2,           // destination outside the user's policy
	VERDICT_UNKNOWN_SOURCE = 3, // source address is no registered peer
	VERDICT_UNPARSED = 4,       // IPv6 header chain not walked to the transport header: dropped
	VERDICT_OVER_QUOTA = 5,     // new flow beyond the user's quota: dropped
};

enum event_kind {
	EVENT_NEW_FLOW = 1,
	EVENT_DENIED = 2,
	EVENT_UNKNOWN_SOURCE = 3,
	EVENT_UNPARSED = 4, // an unparsed IPv6 packet (at most 10/s per user)
	EVENT_QUOTA = 5,    // a user at 7/8 of their quota or beyond (at most 100/s per user)
};

enum counter_index {
	COUNTER_ALLOWED = 0,
	COUNTER_DENIED = 1,
	COUNTER_UNKNOWN_SOURCE = 2,
	COUNTER_NOT_IP = 3,       // not IPv4/IPv6, or IP header cut off: dropped
	COUNTER_EVENTS_LOST = 4,  // ring buffer full
	COUNTER_FLOWS_FAILED = 5, // flow table update failed
	COUNTER_REPLIES = 6,      // egress packets matched to a flow
	COUNTER_MALFORMED = 7,    // IPv6 with IPv4-mapped addresses: dropped
	COUNTER_UNPARSED = 8,     // IPv6 header chain not walked to the end
	COUNTER_OVER_QUOTA = 9,   // new flows beyond the user's quota: dropped
	COUNTER_MAX = 10,
};

// Addresses are 16 bytes in network order; IPv4 in v4-mapped form
// (::ffff:a.b.c.d), so one map serves both families.
struct peer_key {
	__u8 addr[16];
};

struct peer_value {
	__u32 user_id;
	__u32 policy_id; // 0: no policy, the group's routing decides
};

// LPM key: prefixlen counts the 32 bits of policy_id plus the address
// prefix bits (an IPv4 /24 is 32+96+24).
struct policy_key {
	__u32 prefixlen;
	__u32 policy_id;
	__u8 addr[16];
};

// Port ranges one policy entry may carry (bpf.MaxPortRanges).
#define MAX_PORT_RANGES 16

struct port_range {
	__u16 lo; // destination port range, inclusive (host order)
	__u16 hi;
	__u8 proto; // IPPROTO_TCP, IPPROTO_UDP, ...; IPPROTO_ICMP: ICMP and ICMPv6, any type
	__u8 pad[3];
};

struct policy_value {
	__u32 action;  // VERDICT_ALLOW or VERDICT_DENY
	__u32 nranges; // 0: every protocol and port (with VERDICT_ALLOW)
	struct port_range ranges[MAX_PORT_RANGES];
};

struct flow_key {
	__u8 src[16];
	__u8 dst[16];
	// TCP/UDP/SCTP: ports. ICMP: sport is the echo identifier, dport is
	// type<<8|code (echo replies are folded onto their request).
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_value {
	__u64 first_ns; // CLOCK_MONOTONIC (bpf_ktime_get_ns)
	__u64 last_ns;
	__u64 packets; // client -> destination, GSO super-packets counted per segment
	__u64 bytes;   // IP bytes, headers included
	__u64 reply_packets;
	__u64 reply_bytes;
	__u32 user_id; // the user who started the flow (charged for it)
	__u32 ifindex;
	__u8 verdict;
	__u8 pad[7];
};

// Per-user maps (keyed by user id, which the gateway never reuses in a
// process's life; 1M users, memory only for those seen).
//
// Written by user space only: the user's quota and how many of their flows
// it removed from the table.
struct user_limit {
	__u64 removed;
	__u32 quota;
	__u32 pad;
};

// Written by the program only (user space creates the entry with zeros).
struct user_stat {
	__u64 inserted;   // flows entered in the table
	__u64 over_quota; // new-flow packets dropped beyond the quota
	__u64 unparsed;   // unparsed IPv6 packets
	__u64 last_unparsed_ns;
	__u64 last_quota_ns;
};

struct event {
	__u64 ts_ns;
	__u32 user_id;
	__u32 ifindex;
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 verdict;
	__u8 kind;
	__u8 pad;
	__u32 bytes;
	__u32 pad2;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct peer_key);
	__type(value, struct peer_value);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
} policy SEC(".maps");

// Entries are allocated as flows start (no preallocation): max_entries,
// set by the Go side from the pools' capacity, bounds the memory.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct user_limit);
} user_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct user_stat);
} user_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

// Time of this CPU's last unknown-source event: such packets create no
// flow, so their events are limited to one per CPU per interval.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unknown_last_event SEC(".maps");

#define UNKNOWN_EVENT_INTERVAL_NS (100ULL * 1000 * 1000)
#define UNPARSED_EVENT_INTERVAL_NS (100ULL * 1000 * 1000)
#define QUOTA_EVENT_INTERVAL_NS (10ULL * 1000 * 1000)

// Only there to put these types into BTF, so bpf2go generates Go types for
// them (the Go side checks its constants against the enums in a test).
const struct event *unused_event __attribute__((unused));
const enum verdict *unused_verdict __attribute__((unused));
const enum event_kind *unused_event_kind __attribute__((unused));
const enum counter_index *unused_counter_index __attribute__((unused));
const struct user_limit *unused_user_limit __attribute__((unused));
const struct user_stat *unused_user_stat __attribute__((unused));
const struct port_range *unused_port_range __attribute__((unused));

struct packet {
	struct flow_key key;
	__u32 hdr_len;    // IP + L4 header bytes (to count GSO segments)
	__u32 l4_payload; // bytes after hdr_len
	__u32 later_frag; // a fragment other than the first: no transport header
};

static __always_inline void count(__u32 idx, __u64 packets, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&counters, &idx);
	if (c) {
		c->packets += packets;
		c->bytes += bytes;
	}
}

static __always_inline void map_v4(__u8 dst[16], __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

// parse_l4 fills ports (or ICMP identity) and the L4 header length at off.
// A missing or cut-off L4 header (a tiny first fragment, say) leaves the
// ports 0: the packet is still judged by its addresses, never waved
// through.
static __always_inline void parse_l4(struct __sk_buff *skb, __u32 off, __u32 ip_end, struct packet *p)
{
	__u8 proto = p->key.proto;
	__u32 l4len = 0;

	if (proto == IPPROTO_TCP) {
		__u8 tcp[14];
		if (bpf_skb_load_bytes(skb, off, tcp, sizeof(tcp)) == 0) {
			__u32 doff = (tcp[12] >> 4) * 4;
			p->key.sport = ((__u16)tcp[0] << 8) | tcp[1];
			p->key.dport = ((__u16)tcp[2] << 8) | tcp[3];
			l4len = doff >= 20 ? doff : 20;
		}
	} else if (proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE || proto == IPPROTO_SCTP) {
		__u8 ports[4];
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) == 0) {
			p->key.sport = ((__u16)ports[0] << 8) | ports[1];
			p->key.dport = ((__u16)ports[2] << 8) | ports[3];
			l4len = proto == IPPROTO_SCTP ? 12 : 8;
		}
	} else if (proto == IPPROTO_ICMP || proto == 58 /* ICMPv6 */) {
		__u8 icmp[8];
		if (bpf_skb_load_bytes(skb, off, icmp, sizeof(icmp)) == 0) {
			__u8 type = icmp[0];
			// Echo request/reply keep their identifier, so one ping run
			// is one flow; replies fold onto the request type.
			if (proto == IPPROTO_ICMP && (type == 8 || type == 0)) {
				p->key.sport = ((__u16)icmp[4] << 8) | icmp[5];
				type = 8;
			} else if (proto == 58 && (type == 128 || type == 129)) {
				p->key.sport = ((__u16)icmp[4] << 8) | icmp[5];
				type = 128;
			}
			p->key.dport = ((__u16)type << 8) | icmp[1];
			l4len = 8;
		}
	}
	p->hdr_len = off - l3_offset + l4len;
	p->l4_payload = ip_end > off + l4len ? ip_end - off - l4len : 0;
}

static __always_inline int is_v4_mapped(const __u8 a[16])
{
	__u64 hi;
	__u32 mid;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&mid, a + 8, 4);
	return hi == 0 && mid == bpf_htonl(0x0000ffff);
}

#define PARSE_NOT_IP -1
#define PARSE_MALFORMED -2
#define PARSE_UNPARSED -3

// parse reads the IP and L4 headers into p. Returns PARSE_NOT_IP for
// anything that is not an IPv4/IPv6 packet with a readable IP header, and
// PARSE_MALFORMED for IPv6 packets with IPv4-mapped addresses, which would
// otherwise alias IPv4 peers and policy entries, and PARSE_UNPARSED for IPv6
// packets whose extension headers do not end in a transport header within
// MAX_EXT_HEADERS or are cut off (addresses and, as protocol, the type of
// the header the walk stopped at are filled in).
static __always_inline int parse(struct __sk_buff *skb, struct packet *p)
{
	__u32 off = l3_offset;
	__u8 first;

	if (bpf_skb_load_bytes(skb, off, &first, 1) < 0)
		return -1;
	__u8 version = first >> 4;
	// On a TUN device the driver sets skb->protocol from the same nibble;
	// a disagreement means a malformed packet.
	__u16 proto = bpf_ntohs(skb->protocol);
	if (proto == ETH_P_IP && version != 4)
		return -1;
	if (proto == ETH_P_IPV6 && version != 6)
		return -1;

	if (version == 4) {
		__u8 ip[20];
		if (bpf_skb_load_bytes(skb, off, ip, sizeof(ip)) < 0)
			return -1;
		__u32 ihl = (ip[0] & 0x0f) * 4;
		if (ihl < 20)
			return -1;
		__u32 total = ((__u32)ip[2] << 8) | ip[3];
		__u16 frag = (((__u16)ip[6] << 8) | ip[7]) & 0x1fff;
		p->key.proto = ip[9];
		__be32 a;
		__builtin_memcpy(&a, ip + 12, 4);
		map_v4(p->key.src, a);
		__builtin_memcpy(&a, ip + 16, 4);
		map_v4(p->key.dst, a);
		// GSO super-packets carry 0 or their real length here; use the
		// skb length for the end of the packet when total is 0.
		__u32 ip_end = skb->len;
		if (total != 0 && total >= ihl && off + total < ip_end)
			ip_end = off + total;
		if (frag != 0) { // not the first fragment: no L4 header
			p->later_frag = 1;
			p->hdr_len = ihl;
			p->l4_payload = 0;
			return 0;
		}
		parse_l4(skb, off + ihl, ip_end, p);
		return 0;
	}
	if (version == 6) {
		__u8 ip6[40];
		if (bpf_skb_load_bytes(skb, off, ip6, sizeof(ip6)) < 0)
			return -1;
		__builtin_memcpy(p->key.src, ip6 + 8, 16);
		__builtin_memcpy(p->key.dst, ip6 + 24, 16);
		if (is_v4_mapped(p->key.src) || is_v4_mapped(p->key.dst))
			return PARSE_MALFORMED;
		__u8 next = ip6[6];
		__u32 l4 = off + 40;
		// Walk the extension headers (RFC 8200 4, and the RFC 7045 list)
		// up to the transport header. A chain longer than MAX_EXT_HEADERS,
		// or one cut off, hides the transport header: unparsed.
		for (int i = 0; i <= MAX_EXT_HEADERS; i++) {
			if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
			    next == 135 /* mobility */ || next == 139 /* HIP */ || next == 140 /* shim6 */) {
				__u8 ext[2];
				if (i == MAX_EXT_HEADERS || bpf_skb_load_bytes(skb, l4, ext, 2) < 0) {
					p->key.proto = next;
					return PARSE_UNPARSED;
				}
				next = ext[0];
				l4 += ((__u32)ext[1] + 1) * 8;
			} else if (next == IPPROTO_FRAGMENT) {
				__u8 fh[4];
				if (i == MAX_EXT_HEADERS || bpf_skb_load_bytes(skb, l4, fh, 4) < 0) {
					p->key.proto = next;
					return PARSE_UNPARSED;
				}
				next = fh[0];
				l4 += 8;
				if (((((__u16)fh[2] << 8) | fh[3]) & 0xfff8) != 0) {
					// A later fragment: no transport header to find.
					p->later_frag = 1;
					p->key.proto = next;
					p->hdr_len = l4 - off;
					p->l4_payload = 0;
					return 0;
				}
			} else if (next == IPPROTO_AH) {
				__u8 ah[2];
				if (i == MAX_EXT_HEADERS || bpf_skb_load_bytes(skb, l4, ah, 2) < 0) {
					p->key.proto = next;
					return PARSE_UNPARSED;
				}
				next = ah[0];
				l4 += ((__u32)ah[1] + 2) * 4;
			} else {
				break;
			}
		}
		p->key.proto = next;
		// Headers claiming more bytes than the packet has: the
		// transport header is nowhere.
		if (l4 > skb->len)
			return PARSE_UNPARSED;
		parse_l4(skb, l4, skb->len, p);
		return 0;
	}
	return -1;
}

// segments returns how many wire packets skb stands for: wireguard-go
// coalesces TCP and UDP segments into GSO super-packets before writing them
// to the TUN device.
static __always_inline __u32 segments(struct __sk_buff *skb, struct packet *p)
{
	__u32 gso = skb->gso_size;
	if (gso == 0 || p->l4_payload <= gso)
		return 1;
	return (p->l4_payload + gso - 1) / gso;
}

static __always_inline void emit(__u8 kind, __u8 verdict, __u32 user, struct __sk_buff *skb,
				 struct flow_key *k, __u64 bytes, __u64 now)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_EVENTS_LOST, 1, 0);
		return;
	}
	e->ts_ns = now;
	e->user_id = user;
	e->ifindex = skb->ifindex;
	__builtin_memcpy(e->src, k->src, 16);
	__builtin_memcpy(e->dst, k->dst, 16);
	e->sport = k->sport;
	e->dport = k->dport;
	e->proto = k->proto;
	e->verdict = verdict;
	e->kind = kind;
	e->pad = 0;
	e->bytes = bytes;
	e->pad2 = 0;
	bpf_ringbuf_submit(e, 0);
}

// user_stat_of returns user's stats entry, creating it if user space has
// not (NULL only if the map is full).
static __always_inline struct user_stat *user_stat_of(__u32 user)
{
	struct user_stat *st = bpf_map_lookup_elem(&user_stats, &user);
	if (st)
		return st;
	struct user_stat zero = {};
	bpf_map_update_elem(&user_stats, &user, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&user_stats, &user);
}

// over_quota says whether user may not start another flow, and raises a
// quota event from 7/8 of the quota on, so user space evicts the user's
// least recently active flows before new ones are refused.
static __always_inline int over_quota(struct __sk_buff *skb, struct packet *p, __u32 user, struct user_stat *st,
				      __u64 bytes, __u64 now)
{
	__u64 quota = default_quota, removed = 0;
	struct user_limit *lim = bpf_map_lookup_elem(&user_limits, &user);
	if (lim) {
		quota = lim->quota;
		removed = lim->removed;
	}
	// removed is written by user space after it took flows out; read
	// early it only makes live look larger, never smaller.
	__s64 live = (__s64)(st->inserted - removed);
	int over = live >= (__s64)quota;
	if (live + 1 >= (__s64)(quota - quota / 8) && now - st->last_quota_ns >= QUOTA_EVENT_INTERVAL_NS) {
		st->last_quota_ns = now;
		emit(EVENT_QUOTA, over ? VERDICT_OVER_QUOTA : VERDICT_ALLOW, user, skb, &p->key, bytes, now);
	}
	return over;
}

// ports_allow says whether the packet matches one of pv's port ranges.
static __always_inline int ports_allow(const struct policy_value *pv, const struct packet *p)
{
	__u8 proto = p->key.proto;
	int icmp = proto == IPPROTO_ICMP || proto == 58;
	__u32 n = pv->nranges;
	for (int i = 0; i < MAX_PORT_RANGES; i++) {
		if (i >= n)
			break;
		const struct port_range *r = &pv->ranges[i];
		if (icmp) {
			if (r->proto == IPPROTO_ICMP)
				return 1;
			continue;
		}
		if (r->proto != proto)
			continue;
		// A cut-off transport header leaves dport 0, which no range
		// holds: judged, never waved through.
		if (p->later_frag || (p->key.dport >= r->lo && p->key.dport <= r->hi))
			return 1;
	}
	return 0;
}

SEC("tcx/ingress")
int flows_ingress(struct __sk_buff *skb)
{
	struct packet p = {};

	int perr = parse(skb, &p);
	if (perr == PARSE_MALFORMED) {
		count(COUNTER_MALFORMED, 1, skb->len - l3_offset);
		return TCX_DROP;
	}
	if (perr < 0 && perr != PARSE_UNPARSED) {
		// A TUN device carries nothing else; what cannot be judged is
		// not let through.
		count(COUNTER_NOT_IP, 1, skb->len - l3_offset);
		return TCX_DROP;
	}
	__u32 segs = segments(skb, &p);
	__u64 bytes = (__u64)skb->len - l3_offset + (__u64)(segs - 1) * p.hdr_len;
	__u64 now = bpf_ktime_get_ns();

	struct peer_key pk;
	__builtin_memcpy(pk.addr, p.key.src, 16);
	struct peer_value *peer = bpf_map_lookup_elem(&peers, &pk);
	if (!peer) {
		count(COUNTER_UNKNOWN_SOURCE, segs, bytes);
		__u32 zero = 0;
		__u64 *last = bpf_map_lookup_elem(&unknown_last_event, &zero);
		if (last && now - *last >= UNKNOWN_EVENT_INTERVAL_NS) {
			*last = now;
			emit(EVENT_UNKNOWN_SOURCE, VERDICT_UNKNOWN_SOURCE, 0, skb, &p.key, bytes, now);
		}
		return TCX_DROP;
	}
	__u32 user = peer->user_id;
	if (perr == PARSE_UNPARSED) {
		count(COUNTER_UNPARSED, 1, bytes);
		struct user_stat *st = user_stat_of(user);
		if (st) {
			__sync_fetch_and_add(&st->unparsed, 1);
			if (now - st->last_unparsed_ns >= UNPARSED_EVENT_INTERVAL_NS) {
				st->last_unparsed_ns = now;
				emit(EVENT_UNPARSED, allow_unparsed ? VERDICT_ALLOW : VERDICT_UNPARSED, user, skb,
				     &p.key, bytes, now);
			}
		}
		if (!allow_unparsed)
			return TCX_DROP;
		// Allowed: judged and accounted by addresses and the header
		// type the walk stopped at, ports 0.
	}
	__u8 verdict = VERDICT_ALLOW;
	if (peer->policy_id != 0) {
		struct policy_key lk = {.prefixlen = 32 + 128, .policy_id = peer->policy_id};
		__builtin_memcpy(lk.addr, p.key.dst, 16);
		struct policy_value *pv = bpf_map_lookup_elem(&policy, &lk);
		if (pv && (pv->action == VERDICT_DENY || (pv->nranges > 0 && !ports_allow(pv, &p))))
			verdict = VERDICT_DENY;
	}

	struct flow_value *f = bpf_map_lookup_elem(&flows, &p.key);
	if (f) {
		count(verdict == VERDICT_ALLOW ? COUNTER_ALLOWED : COUNTER_DENIED, segs, bytes);
		__sync_fetch_and_add(&f->packets, segs);
		__sync_fetch_and_add(&f->bytes, bytes);
		f->last_ns = now;
		// A policy change applies to running flows at once. The flow
		// stays the user's who started it (and is charged to them).
		f->verdict = verdict;
		return verdict == VERDICT_ALLOW ? TCX_NEXT : TCX_DROP;
	}
	// A new flow: charged to the user, within their quota.
	struct user_stat *st = user_stat_of(user);
	if (!st || over_quota(skb, &p, user, st, bytes, now)) {
		// Beyond the user's quota (or no room to count it): only this
		// user's new flows are refused, until user space has evicted
		// their least recently active ones.
		count(COUNTER_OVER_QUOTA, segs, bytes);
		if (st)
			__sync_fetch_and_add(&st->over_quota, 1);
		return TCX_DROP;
	}
	struct flow_value nf = {
		.first_ns = now,
		.last_ns = now,
		.packets = segs,
		.bytes = bytes,
		.user_id = user,
		.ifindex = skb->ifindex,
		.verdict = verdict,
	};
	long err = bpf_map_update_elem(&flows, &p.key, &nf, BPF_NOEXIST);
	if (err == 0) {
		__sync_fetch_and_add(&st->inserted, 1);
		count(verdict == VERDICT_ALLOW ? COUNTER_ALLOWED : COUNTER_DENIED, segs, bytes);
		emit(verdict == VERDICT_ALLOW ? EVENT_NEW_FLOW : EVENT_DENIED, verdict, user, skb, &p.key, bytes, now);
		return verdict == VERDICT_ALLOW ? TCX_NEXT : TCX_DROP;
	}
	// Another CPU created it a moment ago.
	f = bpf_map_lookup_elem(&flows, &p.key);
	if (f) {
		count(verdict == VERDICT_ALLOW ? COUNTER_ALLOWED : COUNTER_DENIED, segs, bytes);
		__sync_fetch_and_add(&f->packets, segs);
		__sync_fetch_and_add(&f->bytes, bytes);
		f->last_ns = now;
		return verdict == VERDICT_ALLOW ? TCX_NEXT : TCX_DROP;
	}
	// The table is full (it is sized for every user's quota, so only if
	// flows.table_max capped it): what cannot be logged does not pass.
	count(COUNTER_FLOWS_FAILED, segs, bytes);
	return TCX_DROP;
}

SEC("tcx/egress")
int flows_egress(struct __sk_buff *skb)
{
	struct packet p = {};

	if (parse(skb, &p) < 0)
		return TCX_NEXT;
	// The flow was keyed by the client's direction: swap.
	struct flow_key k = {};
	__builtin_memcpy(k.src, p.key.dst, 16);
	__builtin_memcpy(k.dst, p.key.src, 16);
	k.proto = p.key.proto;
	if (p.key.proto == IPPROTO_ICMP || p.key.proto == 58) {
		k.sport = p.key.sport;
		k.dport = p.key.dport;
	} else {
		k.sport = p.key.dport;
		k.dport = p.key.sport;
	}
	struct flow_value *f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return TCX_NEXT;
	__u32 segs = segments(skb, &p);
	__u64 bytes = (__u64)skb->len - l3_offset + (__u64)(segs - 1) * p.hdr_len;
	__sync_fetch_and_add(&f->reply_packets, segs);
	__sync_fetch_and_add(&f->reply_bytes, bytes);
	f->last_ns = bpf_ktime_get_ns();
	count(COUNTER_REPLIES, segs, bytes);
	return TCX_NEXT;
}

char __license[] SEC("license") = "Dual MIT/GPL";
