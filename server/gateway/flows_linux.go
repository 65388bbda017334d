package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"

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
// the user's own allow list, if OnPeer gave one; every flow is accounted
// and, once idle (30 s) or older than 5 min, written to the flow log as one
// JSON line (see bpf.FlowRecord) and removed from the kernel's table.
// Denied flows are logged at Info, new flows at Debug.
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
	file   *logfile.File // nil without a flow log; reopened at SIGHUP
	cancel context.CancelFunc
	done   sync.WaitGroup
	events *bpf.EventReader

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

// NewFlowFilter loads the filter, attaches it to ifaces (names of layer-3
// WireGuard interfaces in this network namespace; may be empty, see
// AddInterface), and, if logPath is not "", appends the flow log to that
// file (created 0640).
func NewFlowFilter(ifaces []string, logPath string, log *slog.Logger) (*FlowFilter, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := bpf.Load(bpf.Options{})
	if err != nil {
		return nil, fmt.Errorf("flow filter: %w", err)
	}
	ff := &FlowFilter{
		log: log, filter: f,
		users: map[string]uint32{}, names: map[uint32]string{},
		peers: map[netip.Addr]peerEntry{}, policies: map[string]*policyRef{},
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
		fl := bpf.NewFlowLog(f, ff.file, bpf.FlowLogOptions{UserName: ff.userName})
		ff.done.Add(1)
		go func() {
			defer ff.done.Done()
			if err := fl.Run(ctx, func(err error) { log.Warn("flow log", "err", err) }); err != nil {
				log.Warn("flow log: final flush", "err", err)
			}
		}()
	}
	ff.done.Add(1)
	go ff.readEvents()
	log.Info("flow filter loaded", "interfaces", ifaces, "flow_log", logPath)
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
			if err := ff.filter.SetPolicy(ref.id, allowed); err != nil {
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
		attrs := []any{"interface", e.Interface, "flow", e.FlowKey.String()}
		switch e.Kind {
		case bpf.EventNewFlow:
			ff.log.Debug("flow", append(attrs, "user", ff.userName(e.UserID))...)
		case bpf.EventDenied:
			ff.log.Info("flow denied by the user's policy", append(attrs, "user", ff.userName(e.UserID))...)
		case bpf.EventUnknownSource:
			ff.log.Warn("packet from an unregistered tunnel address dropped", attrs...)
		}
	}
}

// policyKeyOf is a canonical form of an allow list, so users with the
// same list share one kernel policy.
func policyKeyOf(allowed []netip.Prefix) string {
	s := make([]string, 0, len(allowed))
	for _, p := range allowed {
		s = append(s, p.Masked().String())
	}
	slices.Sort(s)
	return "[" + strings.Join(slices.Compact(s), ",") + "]"
}
