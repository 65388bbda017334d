package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/internal/logfile"
)

// FlowFilter is the gateway's per-user eBPF filter and flow log (package
// bpf) over its group interfaces.
//
// What it does: on each attached WireGuard interface, a packet from a
// client is dropped unless its source address was registered with OnPeer
// (an unregistered source is counted and logged as a warning); a
// registered user's packets are dropped when their destination is outside
// the user's own allow list, if OnPeer gave one; every flow is accounted,
// written to the flow log when it starts, and, once idle (30 s) or older
// than 5 min, written again with its counts (see bpf.FlowRecord) and
// removed from the kernel's table. Denied flows are logged at Info, new
// flows at Debug.
//
// Each user holds at most a quota of flows in the table: from 7/8 of it
// on, their least recently active flows are evicted down to 3/4 (written
// with end "evicted", counted per user in Evictions, and a Warn line per
// user at most every 10 s); new flows beyond it are dropped until then. An
// IPv6 packet whose transport header the filter cannot reach is dropped
// (unless allowed), written to the flow log and logged at Warn with its
// user.
//
// Use, in this order (the interfaces must exist, i.e. after wgdev.Create):
//
//	ff, err := NewFlowFilter(nil, cfg.FlowLog, log)         // loads the program
//	for each stored, unexpired peer p:                       // before attaching, so
//	    ff.OnPeer(p.Addr.V4, p.User, nil)                    // no client is dropped
//	    ff.OnPeer(p.Addr.V6, p.User, nil)                    // at start-up
//	for each network n: ff.AddInterface(n.Interface)
//	on registration:          ff.OnPeer(addr, user, nil) for each address,
//	                          before the peer is added to the WireGuard device
//	on revoke/expiry/delete:  ff.OnPeerRemoved(addr) for each address,
//	                          after the peer is removed from the device
//	on a network removed:     ff.RemoveInterface(name) before closing its device
//	on shutdown:              ff.Close() (writes the remaining flows)
//
// NewFlowFilter(ifaces, ...) with the interfaces attaches at once, for
// callers that have no stored peers to register first. Invalid addresses
// (a peer without IPv6) are ignored by OnPeer and OnPeerRemoved, so both
// addresses of a peer can be passed unconditionally.
//
// It needs root (or CAP_BPF and CAP_NET_ADMIN) and Linux >= 6.6; the
// errors say which is missing. It is safe for concurrent use.
type FlowFilter struct {
	log    *slog.Logger
	filter *bpf.Filter
	file   *logfile.File // nil without a flow log; reopened at SIGUSR1/SIGHUP
	flog   *bpf.FlowLog
	cancel context.CancelFunc
	done   sync.WaitGroup
	events *bpf.EventReader

	// Users whose quota events await the reaper.
	reapMu   sync.Mutex
	reapWant map[uint32]bool
	reapWake chan struct{}
	evicted  map[uint32]uint64    // user -> flows evicted
	warned   map[uint32]time.Time // user -> last eviction log line
	unwarned map[uint32]uint64    // user -> evictions since that line

	mu       sync.Mutex
	users    map[string]uint32 // user -> id, kept for the process's life
	names    map[uint32]string
	peers    map[netip.Addr]peerEntry
	policies map[string]*policyRef // canonical allow list -> policy
	nextPol  uint32
	closed   bool
}

type peerEntry struct {
	user      uint32
	policyKey string // "" for no policy
}

type policyRef struct {
	id   uint32
	refs int
}

// NewFlowFilter loads the filter with the default table and quota (see
// NewFlowFilterWith).
func NewFlowFilter(ifaces []string, logPath string, log *slog.Logger) (*FlowFilter, error) {
	return NewFlowFilterWith(FlowFilterOptions{Interfaces: ifaces, LogPath: logPath, Log: log})
}

// FlowFilterOptions configure NewFlowFilterWith.
type FlowFilterOptions struct {
	// Interfaces to attach at once (names of layer-3 WireGuard
	// interfaces in this network namespace; may be empty, see
	// AddInterface).
	Interfaces []string
	// LogPath, if not "", is the flow log, appended to (created 0640).
	LogPath string
	Log     *slog.Logger
	// Kernel table and quotas (bpf.Options: table size, flows per user,
	// whether unparsed IPv6 packets pass).
	Table bpf.Options
}

// NewFlowFilterWith loads the filter, attaches it to opts.Interfaces and
// starts the flow log.
func NewFlowFilterWith(opts FlowFilterOptions) (*FlowFilter, error) {
	log, ifaces, logPath := opts.Log, opts.Interfaces, opts.LogPath
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := bpf.Load(opts.Table)
	if err != nil {
		return nil, fmt.Errorf("flow filter: %w", err)
	}
	ff := &FlowFilter{
		log: log, filter: f,
		users: map[string]uint32{}, names: map[uint32]string{},
		peers: map[netip.Addr]peerEntry{}, policies: map[string]*policyRef{},
		reapWant: map[uint32]bool{}, reapWake: make(chan struct{}, 1),
		evicted: map[uint32]uint64{}, warned: map[uint32]time.Time{}, unwarned: map[uint32]uint64{},
	}
	fail := func(err error) (*FlowFilter, error) {
		if ff.events != nil {
			ff.events.Close()
		}
		if ff.file != nil {
			ff.file.Close()
		}
		f.Close()
		return nil, fmt.Errorf("flow filter: %w", err)
	}
	for _, name := range ifaces {
		if err := f.Attach(name); err != nil {
			return fail(err)
		}
	}
	if ff.events, err = f.Events(); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ff.cancel = cancel
	// The flow log runs without a file too: only it removes flows from
	// the kernel's table.
	var w io.Writer = io.Discard
	if logPath != "" {
		ff.file, err = logfile.Open(logPath, 0o640)
		if err != nil {
			cancel()
			return fail(fmt.Errorf("open flow log: %w", err))
		}
		// logrotate moves the file and sends SIGUSR1 (packaging's
		// logrotate snippet); SIGHUP, which also reloads the
		// configuration, reopens it too. The next flows go to a new file.
		ff.file.ReopenOn(func(err error) {
			log.Warn("flow log: reopen failed; still writing the old file", "err", err)
		}, syscall.SIGUSR1, syscall.SIGHUP)
		w = ff.file
	}
	ff.flog = bpf.NewFlowLog(f, w, bpf.FlowLogOptions{UserName: ff.userName})
	ff.done.Add(3)
	go func() {
		defer ff.done.Done()
		if err := ff.flog.Run(ctx, func(err error) { log.Warn("flow log", "err", err) }); err != nil {
			log.Warn("flow log: final flush", "err", err)
		}
	}()
	go ff.readEvents()
	go ff.reap(ctx)
	log.Info("flow filter loaded", "interfaces", ifaces, "flow_log", logPath,
		"table_size", opts.Table.FlowTableSize, "flows_per_user", f.Quota(), "unparsed_allowed", opts.Table.AllowUnparsed)
	return ff, nil
}

// AddInterface attaches the filter to another group interface.
func (ff *FlowFilter) AddInterface(name string) error {
	if err := ff.filter.Attach(name); err != nil {
		return fmt.Errorf("flow filter: %w", err)
	}
	ff.log.Info("flow filter attached", "interface", name)
	return nil
}

// RemoveInterface detaches the filter from a group interface.
func (ff *FlowFilter) RemoveInterface(name string) error {
	if err := ff.filter.Detach(name); err != nil {
		return fmt.Errorf("flow filter: %w", err)
	}
	return nil
}

// OnPeer registers a client's tunnel address addr as user's. allowed, if
// not nil, is the user's own allow list (narrower than the group's
// networks): other destinations are dropped; an empty non-nil list drops
// everything. nil leaves the group's routing in charge. Calling it again
// for the same address replaces user and list.
func (ff *FlowFilter) OnPeer(addr netip.Addr, user string, allowed []netip.Prefix) error {
	var rules []bpf.Allow
	if allowed != nil {
		rules = make([]bpf.Allow, 0, len(allowed))
		for _, p := range allowed {
			rules = append(rules, bpf.Allow{Prefix: p})
		}
	}
	return ff.OnPeerRules(addr, user, rules)
}

// OnPeerRules is OnPeer with an allow list that may name protocols and
// ports (bpf.Allow). Users whose lists are the same share one kernel
// policy; changing a live peer's list applies to its next packet.
func (ff *FlowFilter) OnPeerRules(addr netip.Addr, user string, allowed []bpf.Allow) error {
	if !addr.IsValid() {
		return nil
	}
	if user == "" {
		return fmt.Errorf("flow filter: peer %s: empty user", addr)
	}
	addr = addr.Unmap()
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ff.closed {
		return errors.New("flow filter: closed")
	}
	id, ok := ff.users[user]
	if !ok {
		id = uint32(len(ff.users) + 1)
		ff.users[user] = id
		ff.names[id] = user
	}
	key, policyID := "", uint32(0)
	if allowed != nil {
		key = policyKeyOf(allowed)
		ref := ff.policies[key]
		if ref == nil {
			ff.nextPol++
			ref = &policyRef{id: ff.nextPol}
			if err := ff.filter.SetPolicyRules(ref.id, allowed); err != nil {
				return fmt.Errorf("flow filter: peer %s of %s: %w", addr, user, err)
			}
			ff.policies[key] = ref
		}
		policyID = ref.id
		ref.refs++
	}
	if err := ff.filter.SetPeer(addr, id, policyID); err != nil {
		ff.releasePolicy(key)
		return fmt.Errorf("flow filter: peer %s of %s: %w", addr, user, err)
	}
	if old, ok := ff.peers[addr]; ok {
		ff.releasePolicy(old.policyKey)
	}
	ff.peers[addr] = peerEntry{user: id, policyKey: key}
	return nil
}

// OnPeerRemoved unregisters addr: its packets are dropped from now on.
// Removing an unknown address is not an error.
func (ff *FlowFilter) OnPeerRemoved(addr netip.Addr) error {
	if !addr.IsValid() {
		return nil
	}
	addr = addr.Unmap()
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ff.closed {
		return errors.New("flow filter: closed")
	}
	if err := ff.filter.DeletePeer(addr); err != nil {
		return fmt.Errorf("flow filter: %w", err)
	}
	if old, ok := ff.peers[addr]; ok {
		delete(ff.peers, addr)
		ff.releasePolicy(old.policyKey)
	}
	return nil
}

// Counters returns the filter's totals (allowed, denied, unknown source).
func (ff *FlowFilter) Counters() (bpf.Counters, error) { return ff.filter.Counters() }

// Close detaches the filter from every interface, writes the flows still
// in the table to the flow log and closes it.
func (ff *FlowFilter) Close() error {
	ff.mu.Lock()
	if ff.closed {
		ff.mu.Unlock()
		return nil
	}
	ff.closed = true
	ff.mu.Unlock()
	// Stop the flow log first: its final flush still reads the table.
	ff.cancel()
	ff.events.Close()
	ff.done.Wait()
	var errs []error
	if ff.file != nil {
		errs = append(errs, ff.file.Close())
	}
	errs = append(errs, ff.filter.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flow filter: close: %w", err)
	}
	return nil
}

// releasePolicy drops one reference to the policy of key (ff.mu held).
func (ff *FlowFilter) releasePolicy(key string) {
	if key == "" {
		return
	}
	ref := ff.policies[key]
	if ref == nil {
		return
	}
	if ref.refs--; ref.refs > 0 {
		return
	}
	delete(ff.policies, key)
	if err := ff.filter.DeletePolicy(ref.id); err != nil {
		ff.log.Warn("flow filter: delete unused policy", "policy", ref.id, "err", err)
	}
}

func (ff *FlowFilter) userName(id uint32) string {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.names[id]
}

func (ff *FlowFilter) readEvents() {
	defer ff.done.Done()
	for {
		e, err := ff.events.Read()
		if errors.Is(err, bpf.ErrClosed) {
			return
		}
		if err != nil {
			ff.log.Warn("flow filter: read event", "err", err)
			continue
		}
		if err := ff.flog.Record(e); err != nil {
			ff.log.Warn("flow log", "err", err)
		}
		attrs := []any{"interface", e.Interface, "flow", e.FlowKey.String()}
		switch e.Kind {
		case bpf.EventNewFlow:
			ff.log.Debug("flow", append(attrs, "user", ff.userName(e.UserID))...)
		case bpf.EventDenied:
			ff.log.Info("flow denied by the user's policy", append(attrs, "user", ff.userName(e.UserID))...)
		case bpf.EventUnknownSource:
			ff.log.Warn("packet from an unregistered tunnel address dropped", attrs...)
		case bpf.EventUnparsed:
			// At most 10/s per user (the program limits the events).
			msg := "IPv6 packet dropped: its extension headers hide the transport header"
			if e.Verdict == bpf.VerdictAllow {
				msg = "IPv6 packet let through unparsed: its extension headers hide the transport header (flows.unparsed: allow)"
			}
			ff.log.Warn(msg, append(attrs, "user", ff.userName(e.UserID), "next_header", e.Proto)...)
		case bpf.EventQuota:
			ff.reapMu.Lock()
			ff.reapWant[e.UserID] = true
			ff.reapMu.Unlock()
			select {
			case ff.reapWake <- struct{}{}:
			default:
			}
		}
	}
}

// evictionLogEvery limits the gateway log's eviction lines per user.
const evictionLogEvery = 10 * time.Second

// reap evicts the least recently active flows of users near their quota,
// down to 3/4 of it, as their quota events come in.
func (ff *FlowFilter) reap(ctx context.Context) {
	defer ff.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ff.reapWake:
		}
		ff.reapMu.Lock()
		users := make([]uint32, 0, len(ff.reapWant))
		for u := range ff.reapWant {
			users = append(users, u)
		}
		clear(ff.reapWant)
		ff.reapMu.Unlock()
		for _, u := range users {
			uf, err := ff.filter.UserFlows(u)
			if err != nil {
				ff.log.Warn("flow filter: read quota", "user", ff.userName(u), "err", err)
				continue
			}
			low := uf.Quota - uf.Quota/4
			if uf.Live <= low {
				continue
			}
			n, err := ff.flog.Evict(u, int(uf.Live-low))
			if err != nil {
				ff.log.Warn("flow filter: evict flows", "user", ff.userName(u), "err", err)
			}
			ff.noteEvicted(u, n, uf)
		}
	}
}

func (ff *FlowFilter) noteEvicted(u uint32, n int, uf bpf.UserFlows) {
	if n == 0 {
		return
	}
	now := time.Now()
	ff.reapMu.Lock()
	ff.evicted[u] += uint64(n)
	ff.unwarned[u] += uint64(n)
	since := ff.unwarned[u]
	say := now.Sub(ff.warned[u]) >= evictionLogEvery
	if say {
		ff.warned[u] = now
		ff.unwarned[u] = 0
	}
	ff.reapMu.Unlock()
	if say {
		ff.log.Warn("user reached their flow quota: their least recently active flows were written to the flow log and evicted",
			"user", ff.userName(u), "evicted", since, "evicted_total", ff.Evictions()[u], "quota", uf.Quota,
			"refused_new_flows_total", uf.OverQuota)
	}
}

// Evictions returns, per user id, how many flows were evicted because the
// user reached their quota.
func (ff *FlowFilter) Evictions() map[uint32]uint64 {
	ff.reapMu.Lock()
	defer ff.reapMu.Unlock()
	m := make(map[uint32]uint64, len(ff.evicted))
	for k, v := range ff.evicted {
		m[k] = v
	}
	return m
}

// UserFlowStats are one user's flow-table figures for /metrics.
type UserFlowStats struct {
	User                             string
	Evicted, Refused, Unparsed, Live uint64
}

// UserStats returns the figures of every user the filter knows.
func (ff *FlowFilter) UserStats() []UserFlowStats {
	ff.mu.Lock()
	names := maps.Clone(ff.names)
	ff.mu.Unlock()
	ev := ff.Evictions()
	out := make([]UserFlowStats, 0, len(names))
	for id, name := range names {
		uf, err := ff.filter.UserFlows(id)
		if err != nil {
			continue
		}
		out = append(out, UserFlowStats{User: name, Evicted: ev[id], Refused: uf.OverQuota, Unparsed: uf.Unparsed, Live: uf.Live})
	}
	return out
}

// policyKeyOf is a canonical form of an allow list, so users with the
// same list share one kernel policy.
func policyKeyOf(allowed []bpf.Allow) string {
	folded := bpf.FoldPolicy(allowed)
	s := make([]string, 0, len(folded))
	for _, a := range folded {
		s = append(s, a.String())
	}
	return "[" + strings.Join(s, ",") + "]"
}
