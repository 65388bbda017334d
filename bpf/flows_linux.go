package bpf

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Filter is the loaded program and its maps. It is safe for concurrent use.
type Filter struct {
	objs flowsObjects

	mu       sync.Mutex
	attached map[string]*attachment
	ifnames  map[uint32]string // ifindex -> name, kept after detach for flows still in the table
	peers    map[netip.Addr]flowsPeerValue
	policies map[uint32]policyState
	reading  bool // an EventReader is open
	closed   bool

	quota uint32
	// removed counts, per user, the flows TakeFlow removed; the kernel
	// reads it from user_limits (live = its inserted - removed).
	qmu     sync.Mutex
	removed map[uint32]uint64
}

type policyState struct {
	prefixes []netip.Prefix
	rules    []Allow                             // folded (FoldPolicy)
	entries  map[flowsPolicyKey]flowsPolicyValue // LPM key -> value, as in the kernel
}

type attachment struct {
	index           int
	ingress, egress link.Link
}

// Load loads the program and creates its maps. It needs root (CAP_BPF and
// CAP_NET_ADMIN). Call Close to free them.
func Load(opts Options) (*Filter, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("bpf: raise memlock limit: %w%s", err, privilegeHint(err))
	}
	spec, err := loadFlows()
	if err != nil {
		return nil, fmt.Errorf("bpf: read embedded object: %w", err)
	}
	if opts.FlowTableSize != 0 {
		spec.Maps[flowsMapFlows].MaxEntries = opts.FlowTableSize
	}
	if opts.UserQuota == 0 {
		opts.UserQuota = DefaultUserQuota
	}
	allowUnparsed := uint32(0)
	if opts.AllowUnparsed {
		allowUnparsed = 1
	}
	for name, v := range map[string]uint32{
		flowsVarL3Offset: opts.l3Offset, flowsVarDefaultQuota: opts.UserQuota, flowsVarAllowUnparsed: allowUnparsed,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("bpf: set %s: %w", name, err)
		}
	}
	f := &Filter{
		attached: map[string]*attachment{},
		ifnames:  map[uint32]string{},
		peers:    map[netip.Addr]flowsPeerValue{},
		policies: map[uint32]policyState{},
		quota:    opts.UserQuota,
		removed:  map[uint32]uint64{},
	}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("bpf: the kernel's verifier rejected the program: %+v", ve)
		}
		return nil, fmt.Errorf("bpf: load eBPF program: %w%s", err, privilegeHint(err))
	}
	return f, nil
}

// Attach puts the program on tcx ingress and egress of the layer-3 (TUN)
// interface name in the calling thread's network namespace, ahead of other
// tcx programs there.
func (f *Filter) Attach(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("bpf: filter closed")
	}
	if _, ok := f.attached[name]; ok {
		return fmt.Errorf("bpf: attach to %s: already attached", name)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return fmt.Errorf("bpf: attach to %s: no such interface in this network namespace", name)
		}
		return fmt.Errorf("bpf: attach to %s: %w", name, err)
	}
	// The program reads the IP header at offset 0: on a device with a
	// link-layer header it would pass everything unfiltered.
	if enc := l.Attrs().EncapType; enc != "none" {
		return fmt.Errorf("bpf: attach to %s: link type %q has a link-layer header; the filter is for layer-3 (TUN/WireGuard) devices", name, enc)
	}
	a := &attachment{index: l.Attrs().Index}
	a.ingress, err = link.AttachTCX(link.TCXOptions{
		Interface: a.index, Program: f.objs.FlowsIngress, Attach: ebpf.AttachTCXIngress, Anchor: link.Head(),
	})
	if err != nil {
		return attachError(name, "ingress", err)
	}
	a.egress, err = link.AttachTCX(link.TCXOptions{
		Interface: a.index, Program: f.objs.FlowsEgress, Attach: ebpf.AttachTCXEgress, Anchor: link.Head(),
	})
	if err != nil {
		a.ingress.Close()
		return attachError(name, "egress", err)
	}
	f.attached[name] = a
	f.ifnames[uint32(a.index)] = name
	return nil
}

func privilegeHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (needs root, or CAP_BPF and CAP_NET_ADMIN)"
	}
	return ""
}

func attachError(name, dir string, err error) error {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("bpf: attach to %s (%s): this kernel has no tcx (needs Linux >= 6.6): %w", name, dir, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("bpf: attach to %s (%s): %w (needs root or CAP_NET_ADMIN)", name, dir, err)
	}
	return fmt.Errorf("bpf: attach to %s (%s): %w", name, dir, err)
}

// Detach removes the program from interface name. Detaching an interface
// that was never attached is an error; one that vanished meanwhile is not.
func (f *Filter) Detach(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.attached[name]
	if !ok {
		return fmt.Errorf("bpf: detach from %s: not attached", name)
	}
	delete(f.attached, name)
	return a.close()
}

func (a *attachment) close() error {
	// A link whose device was deleted is already detached by the
	// kernel; closing its fd is all that is left.
	return errors.Join(a.ingress.Close(), a.egress.Close())
}

// Attached returns the names of the interfaces the program is on.
func (f *Filter) Attached() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.attached {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SetPeer registers (or updates) the client tunnel address addr as user
// userID under policyID (0: no policy of its own, everything the group
// routes is allowed). A policy other than 0 must have been set with
// SetPolicy first. userID 0 is reserved.
func (f *Filter) SetPeer(addr netip.Addr, userID, policyID uint32) error {
	if !addr.IsValid() {
		return errors.New("bpf: set peer: invalid address")
	}
	if userID == 0 {
		return fmt.Errorf("bpf: set peer %s: user id 0 is reserved", addr)
	}
	addr = addr.Unmap()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("bpf: filter closed")
	}
	if _, ok := f.policies[policyID]; policyID != 0 && !ok {
		return fmt.Errorf("bpf: set peer %s: policy %d is not set (SetPolicy first)", addr, policyID)
	}
	// The user's quota entries first: the program charges their first
	// flow to them.
	f.qmu.Lock()
	err := f.objs.UserLimits.Put(userID, flowsUserLimit{Removed: f.removed[userID], Quota: f.quota})
	f.qmu.Unlock()
	if err != nil {
		return fmt.Errorf("bpf: set peer %s: user %d quota: %w", addr, userID, err)
	}
	if err := f.objs.UserStats.Update(userID, flowsUserStat{}, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("bpf: set peer %s: user %d stats: %w", addr, userID, err)
	}
	v := flowsPeerValue{UserId: userID, PolicyId: policyID}
	if err := f.objs.Peers.Put(peerKey(addr), v); err != nil {
		return fmt.Errorf("bpf: set peer %s: %w", addr, err)
	}
	f.peers[addr] = v
	return nil
}

// DeletePeer unregisters addr; its packets are dropped from now on.
// Deleting an unknown address is not an error.
func (f *Filter) DeletePeer(addr netip.Addr) error {
	if !addr.IsValid() {
		return errors.New("bpf: delete peer: invalid address")
	}
	addr = addr.Unmap()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("bpf: filter closed")
	}
	if err := f.objs.Peers.Delete(peerKey(addr)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("bpf: delete peer %s: %w", addr, err)
	}
	delete(f.peers, addr)
	return nil
}

// SetPolicy makes policyID allow exactly the destinations in allowed (IPv4
// and IPv6 prefixes, every protocol and port) and deny everything else;
// see SetPolicyRules.
func (f *Filter) SetPolicy(policyID uint32, allowed []netip.Prefix) error {
	rules := make([]Allow, 0, len(allowed))
	for _, p := range allowed {
		rules = append(rules, Allow{Prefix: p})
	}
	return f.SetPolicyRules(policyID, rules)
}

// SetPolicyRules makes policyID allow exactly allowed and deny everything
// else; an empty list denies everything. An Allow with Ports lets only
// those protocols and destination ports through (a later fragment passes
// when a range of its protocol is there). The list is folded first
// (FoldPolicy), so that the kernel's longest match carries what every
// covering prefix allows; an entry with more than MaxPortRanges ranges
// after folding is an error. Replacing a policy adds the new entries
// before removing the old ones, so for a moment both are allowed, never
// neither. policyID 0 is reserved for "no policy".
func (f *Filter) SetPolicyRules(policyID uint32, allowed []Allow) error {
	if policyID == 0 {
		return errors.New("bpf: set policy: id 0 is reserved for peers without a policy")
	}
	for _, a := range allowed {
		if !a.Prefix.IsValid() {
			return fmt.Errorf("bpf: set policy %d: invalid prefix %q", policyID, a.Prefix)
		}
		for _, r := range a.Ports {
			if r.Proto == 0 || (r.Proto != ProtoICMP && (r.Lo == 0 || r.Lo > r.Hi)) {
				return fmt.Errorf("bpf: set policy %d: %s: invalid port range %s", policyID, a.Prefix, r)
			}
		}
	}
	folded := FoldPolicy(allowed)
	want, err := policyEntries(policyID, folded)
	if err != nil {
		return fmt.Errorf("bpf: set policy %d: %w", policyID, err)
	}
	prefixes := make([]netip.Prefix, 0, len(folded))
	for _, a := range folded {
		prefixes = append(prefixes, a.Prefix)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("bpf: filter closed")
	}
	old := f.policies[policyID]
	// The catch-all goes in first: with no entry at all the program
	// allows everything.
	catchAll := policyKey(policyID, netip.Prefix{})
	keys := slices.SortedFunc(maps.Keys(want), func(a, b flowsPolicyKey) int {
		return cmp.Compare(a.Prefixlen, b.Prefixlen)
	})
	for i, k := range keys {
		v := want[k]
		if err := f.objs.Policy.Put(k, &v); err != nil {
			// Put back what this call changed, so nothing is half-applied.
			for _, u := range keys[:i] {
				if ov, ok := old.entries[u]; ok {
					f.objs.Policy.Put(u, &ov)
				} else {
					f.objs.Policy.Delete(u)
				}
			}
			return fmt.Errorf("bpf: set policy %d: %w", policyID, err)
		}
	}
	var errs []error
	for k := range old.entries {
		if _, ok := want[k]; !ok && k != catchAll {
			if err := f.objs.Policy.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
		}
	}
	f.policies[policyID] = policyState{prefixes: prefixes, rules: folded, entries: want}
	if len(errs) > 0 {
		return fmt.Errorf("bpf: set policy %d: remove old entries: %w", policyID, errors.Join(errs...))
	}
	return nil
}

// Policy returns the allowed prefixes of policyID and whether it is set.
func (f *Filter) Policy(policyID uint32) ([]netip.Prefix, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.policies[policyID]
	return slices.Clone(p.prefixes), ok
}

// PolicyRules returns the folded allow list of policyID (as the kernel
// holds it) and whether it is set.
func (f *Filter) PolicyRules(policyID uint32) ([]Allow, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.policies[policyID]
	return slices.Clone(p.rules), ok
}

// policyEntries are the LPM entries of a folded allow list: a catch-all
// deny (only the policy id) under one allow entry per prefix. IPv4 lives
// in IPv6's v4-mapped range, so an IPv6 prefix covering ::ffff:0:0/96
// (::/0) gets a deny for that range unless IPv4 0.0.0.0/0 (the same key)
// is allowed: allowing all IPv6 must not allow IPv4.
func policyEntries(id uint32, folded []Allow) (map[flowsPolicyKey]flowsPolicyValue, error) {
	e := map[flowsPolicyKey]flowsPolicyValue{policyKey(id, netip.Prefix{}): {Action: uint32(VerdictDeny)}}
	mapped := netip.MustParseAddr("::ffff:0.0.0.0")
	coversV4 := false
	for _, a := range folded {
		if len(a.Ports) > MaxPortRanges {
			return nil, fmt.Errorf("%s: %d port ranges apply (with those of the prefixes covering it), more than %d", a.Prefix, len(a.Ports), MaxPortRanges)
		}
		v := flowsPolicyValue{Action: uint32(VerdictAllow), Nranges: uint32(len(a.Ports))}
		for i, r := range a.Ports {
			v.Ranges[i] = flowsPortRange{Lo: r.Lo, Hi: r.Hi, Proto: r.Proto}
		}
		e[policyKey(id, a.Prefix)] = v
		p := a.Prefix
		if p.Addr().Is6() && p.Bits() <= 96 && p.Contains(mapped) {
			coversV4 = true
		}
	}
	if v4all := policyKey(id, netip.MustParsePrefix("0.0.0.0/0")); coversV4 {
		if _, ok := e[v4all]; !ok {
			e[v4all] = flowsPolicyValue{Action: uint32(VerdictDeny)}
		}
	}
	return e, nil
}

// DeletePolicy removes policyID. It refuses while a peer still uses it.
func (f *Filter) DeletePolicy(policyID uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.policies[policyID]
	if !ok {
		return nil
	}
	users := 0
	for _, v := range f.peers {
		if v.PolicyId == policyID {
			users++
		}
	}
	if users > 0 {
		return fmt.Errorf("bpf: delete policy %d: still used by %d peer address(es)", policyID, users)
	}
	var errs []error
	// Longest prefixes first, the catch-all last.
	keys := slices.SortedFunc(maps.Keys(old.entries), func(a, b flowsPolicyKey) int {
		return cmp.Compare(b.Prefixlen, a.Prefixlen)
	})
	for _, k := range keys {
		if err := f.objs.Policy.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	delete(f.policies, policyID)
	if len(errs) > 0 {
		return fmt.Errorf("bpf: delete policy %d: %w", policyID, errors.Join(errs...))
	}
	return nil
}

// Flows returns a snapshot of the flow table. The kernel keeps updating it
// while it is read, so a flow may show counts a few packets apart from
// another read.
func (f *Filter) Flows() iter.Seq2[Flow, error] {
	return func(yield func(Flow, error) bool) {
		clock := newMonoClock()
		names := f.ifnameSnapshot()
		// In batches: a scan of a million flows takes a few hundred
		// syscalls instead of two million (the flow log and the quota
		// reaper scan the whole table).
		keys := make([]flowsFlowKey, flowBatch)
		vals := make([]flowsFlowValue, flowBatch)
		var cursor ebpf.MapBatchCursor
		for first := true; ; first = false {
			n, err := f.objs.Flows.BatchLookup(&cursor, keys, vals, nil)
			done := errors.Is(err, ebpf.ErrKeyNotExist)
			if err != nil && !done {
				if first {
					f.iterateFlows(yield, clock, names)
					return
				}
				yield(Flow{}, fmt.Errorf("bpf: read flow table: %w", err))
				return
			}
			for i := range n {
				if !yield(flowFromKernel(keys[i], vals[i], clock, names), nil) {
					return
				}
			}
			if done {
				return
			}
		}
	}
}

// flowBatch is how many flows one batch lookup reads.
const flowBatch = 4096

// iterateFlows is Flows one element at a time, where batch lookups fail.
func (f *Filter) iterateFlows(yield func(Flow, error) bool, clock monoClock, names map[uint32]string) {
	var k flowsFlowKey
	var v flowsFlowValue
	it := f.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		if !yield(flowFromKernel(k, v, clock, names), nil) {
			return
		}
	}
	if err := it.Err(); err != nil {
		yield(Flow{}, fmt.Errorf("bpf: read flow table: %w", err))
	}
}

// TakeFlow removes the flow k from the table and returns its final counts
// (read and deleted in one step, so no packet is counted twice or lost
// between them).
func (f *Filter) TakeFlow(k FlowKey) (Flow, bool, error) {
	var v flowsFlowValue
	kk := kernelFlowKey(k)
	if err := f.objs.Flows.LookupAndDelete(&kk, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Flow{}, false, nil
		}
		return Flow{}, false, fmt.Errorf("bpf: take flow %s: %w", k, err)
	}
	if err := f.release(v.UserId); err != nil {
		return Flow{}, false, fmt.Errorf("bpf: take flow %s: %w", k, err)
	}
	return flowFromKernel(kk, v, newMonoClock(), f.ifnameSnapshot()), true, nil
}

// release gives user back one flow of their quota.
func (f *Filter) release(user uint32) error {
	f.qmu.Lock()
	defer f.qmu.Unlock()
	f.removed[user]++
	if err := f.objs.UserLimits.Put(user, flowsUserLimit{Removed: f.removed[user], Quota: f.quota}); err != nil {
		return fmt.Errorf("release a flow of user %d: %w", user, err)
	}
	return nil
}

// UserFlows returns how many flows user holds, their quota and their
// refused and unparsed packets.
func (f *Filter) UserFlows(user uint32) (UserFlows, error) {
	var st flowsUserStat
	if err := f.objs.UserStats.Lookup(user, &st); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return UserFlows{}, fmt.Errorf("bpf: user %d flows: %w", user, err)
	}
	f.qmu.Lock()
	removed := f.removed[user]
	f.qmu.Unlock()
	live := uint64(0)
	if st.Inserted > removed {
		live = st.Inserted - removed
	}
	return UserFlows{Live: live, Quota: uint64(f.quota), OverQuota: st.OverQuota, Unparsed: st.Unparsed}, nil
}

// Quota is the flows one user may hold.
func (f *Filter) Quota() uint32 { return f.quota }

// Counters returns the program's totals, summed over CPUs.
func (f *Filter) Counters() (Counters, error) {
	var c Counters
	for idx, dst := range map[uint32]*Counter{
		uint32(flowsCounterIndexCOUNTER_ALLOWED):        &c.Allowed,
		uint32(flowsCounterIndexCOUNTER_DENIED):         &c.Denied,
		uint32(flowsCounterIndexCOUNTER_UNKNOWN_SOURCE): &c.UnknownSource,
		uint32(flowsCounterIndexCOUNTER_NOT_IP):         &c.NotIP,
		uint32(flowsCounterIndexCOUNTER_EVENTS_LOST):    &c.EventsLost,
		uint32(flowsCounterIndexCOUNTER_FLOWS_FAILED):   &c.FlowsFailed,
		uint32(flowsCounterIndexCOUNTER_REPLIES):        &c.Replies,
		uint32(flowsCounterIndexCOUNTER_MALFORMED):      &c.Malformed,
		uint32(flowsCounterIndexCOUNTER_UNPARSED):       &c.Unparsed,
		uint32(flowsCounterIndexCOUNTER_OVER_QUOTA):     &c.OverQuota,
	} {
		var perCPU []flowsCounter
		if err := f.objs.Counters.Lookup(idx, &perCPU); err != nil {
			return Counters{}, fmt.Errorf("bpf: read counters: %w", err)
		}
		for _, v := range perCPU {
			dst.Packets += v.Packets
			dst.Bytes += v.Bytes
		}
	}
	return c, nil
}

// Close detaches the program from every interface and frees its maps.
func (f *Filter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var errs []error
	for name, a := range f.attached {
		if err := a.close(); err != nil {
			errs = append(errs, fmt.Errorf("detach from %s: %w", name, err))
		}
	}
	f.attached = nil
	if err := f.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("bpf: close: %w", errors.Join(errs...))
	}
	return nil
}

// EventReader reads the program's ring buffer. Only one can be open per
// Filter.
type EventReader struct {
	f *Filter
	r *ringbuf.Reader
}

// Events opens the event reader.
func (f *Filter) Events() (*EventReader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errors.New("bpf: filter closed")
	}
	if f.reading {
		return nil, errors.New("bpf: an event reader is already open")
	}
	r, err := ringbuf.NewReader(f.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("bpf: open event ring buffer: %w", err)
	}
	f.reading = true
	return &EventReader{f: f, r: r}, nil
}

// SetDeadline makes Read return ErrTimeout after t (zero: no deadline).
func (r *EventReader) SetDeadline(t time.Time) { r.r.SetDeadline(t) }

// Read blocks until the next event.
func (r *EventReader) Read() (Event, error) {
	rec, err := r.r.Read()
	if err != nil {
		switch {
		case errors.Is(err, ringbuf.ErrClosed):
			return Event{}, ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded):
			return Event{}, ErrTimeout
		}
		return Event{}, fmt.Errorf("bpf: read event: %w", err)
	}
	return decodeEvent(rec.RawSample, newMonoClock(), r.f.ifnameSnapshot())
}

// Close stops the reader; a blocked Read returns ErrClosed.
func (r *EventReader) Close() error {
	err := r.r.Close()
	r.f.mu.Lock()
	r.f.reading = false
	r.f.mu.Unlock()
	return err
}

func (f *Filter) ifnameSnapshot() map[uint32]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[uint32]string, len(f.ifnames))
	for k, v := range f.ifnames {
		m[k] = v
	}
	return m
}

// monoClock converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall time.
type monoClock struct {
	wall time.Time
	mono int64
}

func newMonoClock() monoClock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return monoClock{wall: time.Now(), mono: ts.Nano()}
}

func (c monoClock) time(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return c.wall.Add(-time.Duration(c.mono - int64(ns)))
}

func addrFrom16(b [16]byte) netip.Addr { return netip.AddrFrom16(b).Unmap() }

func peerKey(a netip.Addr) flowsPeerKey { return flowsPeerKey{Addr: a.As16()} }

// policyKey is the LPM key of p under id; the zero Prefix is the
// catch-all entry of id.
func policyKey(id uint32, p netip.Prefix) flowsPolicyKey {
	k := flowsPolicyKey{Prefixlen: 32, PolicyId: id}
	if p.IsValid() {
		k.Addr = p.Addr().As16()
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		k.Prefixlen += uint32(bits)
	}
	return k
}

func kernelFlowKey(k FlowKey) flowsFlowKey {
	return flowsFlowKey{Src: k.Src.As16(), Dst: k.Dst.As16(), Sport: k.SrcPort, Dport: k.DstPort, Proto: k.Proto}
}

func flowFromKernel(k flowsFlowKey, v flowsFlowValue, c monoClock, names map[uint32]string) Flow {
	return Flow{
		FlowKey:      FlowKey{Src: addrFrom16(k.Src), Dst: addrFrom16(k.Dst), Proto: k.Proto, SrcPort: k.Sport, DstPort: k.Dport},
		UserID:       v.UserId,
		Interface:    names[v.Ifindex],
		Packets:      v.Packets,
		Bytes:        v.Bytes,
		ReplyPackets: v.ReplyPackets,
		ReplyBytes:   v.ReplyBytes,
		FirstSeen:    c.time(v.FirstNs),
		LastSeen:     c.time(v.LastNs),
		Verdict:      Verdict(v.Verdict),
	}
}

func decodeEvent(raw []byte, c monoClock, names map[uint32]string) (Event, error) {
	var e flowsEvent
	if _, err := binary.Decode(raw, binary.NativeEndian, &e); err != nil {
		return Event{}, fmt.Errorf("bpf: decode event (%d bytes): %w", len(raw), err)
	}
	return Event{
		Kind:      EventKind(e.Kind),
		Verdict:   Verdict(e.Verdict),
		UserID:    e.UserId,
		Interface: names[e.Ifindex],
		FlowKey:   FlowKey{Src: addrFrom16(e.Src), Dst: addrFrom16(e.Dst), Proto: e.Proto, SrcPort: e.Sport, DstPort: e.Dport},
		Bytes:     e.Bytes,
		Time:      c.time(e.TsNs),
	}, nil
}
