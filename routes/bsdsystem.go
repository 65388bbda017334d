package routes

// The macOS System, platform-neutral: every decision of Snapshot, Apply and
// Lookup is made here on bsdRouteMsg values; system_darwin.go only carries
// them through the route socket and sysctl (bsdKernel). Tests drive it
// through a model of XNU's routing table, on Linux as on macOS.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"syscall"
)

// bsdKernel is what macOS offers a route backend: NET_RT_IFLIST and
// NET_RT_DUMP through sysctl, and requests on a PF_ROUTE socket.
type bsdKernel interface {
	// Interfaces lists the interfaces (RTM_IFINFO) and their addresses
	// (RTM_NEWADDR).
	Interfaces() ([]bsdIfMsg, []bsdIfAddrMsg, error)
	// Routes dumps the routing table, IPv4 and IPv6.
	Routes() ([]bsdRouteMsg, error)
	// Request sends m and returns the kernel's answer to it (the reply
	// with m's sequence number). A refusal is the kernel's errno, a
	// syscall.Errno (EEXIST, ESRCH, ...), wrapped.
	Request(m bsdRouteMsg) (bsdRouteMsg, error)
}

// bsdSystem implements System over a bsdKernel.
type bsdSystem struct {
	k   bsdKernel
	log *slog.Logger
	// journal, when set (NewEngine), narrows ownership: see bsdowner.go.
	journal string
}

// bsdSeq numbers requests. Replies are matched on pid and sequence, so it
// is one counter for the process, whatever the number of Systems.
var bsdSeq atomic.Int32

func newBSDSystem(k bsdKernel) *bsdSystem { return &bsdSystem{k: k, log: slog.Default()} }

func (s *bsdSystem) nextSeq() int { return int(bsdSeq.Add(1)) }

func (s *bsdSystem) Snapshot() (*Snapshot, error) {
	ifs, addrs, err := s.k.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	msgs, err := s.k.Routes()
	if err != nil {
		return nil, fmt.Errorf("dump routes: %w", err)
	}
	snap, errs := bsdSnapshot(ifs, addrs, msgs)
	if len(errs) > 0 {
		// One odd kernel entry must not hide the table; say what was left out.
		s.log.Warn("route dump: entries left out", "count", len(errs), "first", errs[0].Error())
	}
	s.claim(snap)
	return snap, nil
}

// names maps interface indexes to names.
func (s *bsdSystem) names() (map[int]string, error) {
	ifs, _, err := s.k.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	names := make(map[int]string, len(ifs))
	for _, i := range ifs {
		names[i.Index] = i.Name
	}
	return names, nil
}

func (s *bsdSystem) Apply(c Change) error {
	switch c.Op {
	case OpAddRoute, OpDelRoute:
	case OpAddRule, OpDelRule:
		return fmt.Errorf("%s: macOS has no policy rules, only routes", c.Op)
	case OpDelLink:
		return fmt.Errorf("%s: macOS has no persistent tunnel devices (a utun dies with its process)", c.Op)
	default:
		return fmt.Errorf("unknown change %q", c.Op)
	}
	if c.Route == nil {
		return fmt.Errorf("%s: no route given", c.Op)
	}
	if c.Op == OpAddRoute {
		return s.add(*c.Route)
	}
	return s.del(*c.Route)
}

func (s *bsdSystem) add(r Route) error {
	names, err := s.names()
	if err != nil {
		return fmt.Errorf("add route %s: %w", r, err)
	}
	m, err := bsdChangeMsg(Change{Op: OpAddRoute, Route: &r}, s.nextSeq(), indexer(names))
	if err != nil {
		return fmt.Errorf("add route %s: %w", r, err)
	}
	_, err = s.k.Request(m)
	if errors.Is(err, syscall.EEXIST) {
		// A replay of an add that already happened is fine; a different
		// route under the same key is not ours to replace.
		if k, _, ferr := s.find(r); ferr == nil && k != nil {
			return nil
		}
		if other, ok := s.atKey(m); ok {
			return fmt.Errorf("add route %s: a different route is in its place: %s", r, other)
		}
	}
	if err != nil {
		return fmt.Errorf("add route %s: %w", r, err)
	}
	return nil
}

// find returns the kernel's entry for r, matched on every field the model
// has (bsdSameRoute), or nil.
func (s *bsdSystem) find(r Route) (*bsdRouteMsg, Route, error) {
	ifs, _, err := s.k.Interfaces()
	if err != nil {
		return nil, Route{}, fmt.Errorf("list interfaces: %w", err)
	}
	msgs, err := s.k.Routes()
	if err != nil {
		return nil, Route{}, fmt.Errorf("dump routes: %w", err)
	}
	names := map[int]string{}
	for _, i := range ifs {
		names[i.Index] = i.Name
	}
	for i := range msgs {
		if bsdCached(msgs[i]) {
			continue
		}
		got, err := bsdRoute(msgs[i], names)
		if err == nil && bsdSameRoute(r, got) {
			return &msgs[i], got, nil
		}
	}
	return nil, Route{}, nil
}

// atKey names the route the kernel holds under the key of request m
// (destination, mask and scope), if any.
func (s *bsdSystem) atKey(m bsdRouteMsg) (Route, bool) {
	names, err := s.names()
	if err != nil {
		return Route{}, false
	}
	want, err := bsdRoute(m, names)
	if err != nil {
		return Route{}, false
	}
	msgs, err := s.k.Routes()
	if err != nil {
		return Route{}, false
	}
	for _, k := range msgs {
		got, err := bsdRoute(k, names)
		if err == nil && got.Dst == want.Dst && Scoped(got) == Scoped(want) && (!Scoped(want) || bsdScope(k) == bsdScope(m)) {
			return got, true
		}
	}
	return Route{}, false
}

func (s *bsdSystem) del(r Route) error {
	if err := bsdCheckDelete(r); err != nil {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	k, _, err := s.find(r)
	if err != nil {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	if k == nil {
		return nil // already gone (or replaced by another's route): undo is idempotent
	}
	if _, err := s.k.Request(bsdDeleteMsg(*k, s.nextSeq())); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	return nil
}

// bsdChangeFlags are the flags of a route RTM_CHANGE would have to change
// and cannot: XNU's route_output sets the gateway (rt_setgate) and the
// interface (rt_setif) of the route in place and keeps its flags
// ("Changing flags still doesn't work", rtsock.c).
const bsdChangeFlags = rtfGateway | rtfHost | rtfBlackhole | rtfReject | rtfIfScope | rtfProto1 | rtfStatic

// Changeable reports whether RTM_CHANGE can turn old into nw: the same key
// and the same flags, only the next hop (gateway, interface) moves. The
// endpoint pin moving to a new router is the case.
func (s *bsdSystem) Changeable(old, nw Route) bool {
	names, err := s.names()
	if err != nil {
		return false
	}
	o, err1 := bsdChangeMsg(Change{Op: OpAddRoute, Route: &old}, 0, indexer(names))
	n, err2 := bsdChangeMsg(Change{Op: OpAddRoute, Route: &nw}, 0, indexer(names))
	if err1 != nil || err2 != nil {
		return false
	}
	sameKey := old.Dst.Masked() == nw.Dst.Masked() && Scoped(old) == Scoped(nw) && (!Scoped(nw) || bsdScope(o) == bsdScope(n))
	return sameKey && o.Flags&bsdChangeFlags == n.Flags&bsdChangeFlags
}

// ChangeRoute moves old to nw's next hop in place (RTM_CHANGE): one write,
// the route never leaves the table, so nothing it holds (the endpoint)
// falls for a moment to a shorter route (the tunnel's halves). When old
// is no longer there, nw is added.
func (s *bsdSystem) ChangeRoute(old, nw Route) error {
	if !s.Changeable(old, nw) {
		return fmt.Errorf("change route %s to %s: RTM_CHANGE cannot change its flags or key", old, nw)
	}
	k, _, err := s.find(old)
	if err != nil {
		return fmt.Errorf("change route %s: %w", old, err)
	}
	if k == nil {
		return s.add(nw)
	}
	names, err := s.names()
	if err != nil {
		return fmt.Errorf("change route %s: %w", old, err)
	}
	m, err := bsdChangeMsg(Change{Op: OpAddRoute, Route: &nw}, s.nextSeq(), indexer(names))
	if err != nil {
		return fmt.Errorf("change route %s to %s: %w", old, nw, err)
	}
	m.Type = rtmChange
	if _, err := s.k.Request(m); err != nil {
		return fmt.Errorf("change route %s to %s: %w", old, nw, err)
	}
	return nil
}

// bsdCheckDelete refuses deletes that cannot name one route. Unlike an
// add, a delete may name any route the dump shows (another program's, a
// kernel one), but never a table or protocol macOS does not have.
func bsdCheckDelete(r Route) error {
	switch {
	case !r.Dst.IsValid():
		return errors.New("route has no destination")
	case r.Table != 0:
		return fmt.Errorf("table %d: macOS has a single routing table", r.Table)
	case r.Protocol != 0 && r.Protocol != Protocol:
		return fmt.Errorf("protocol %d: macOS marks only ours (RTF_PROTO1 = protocol %d)", r.Protocol, Protocol)
	}
	return nil
}

func (s *bsdSystem) Lookup(q Query) (Route, error) {
	m, err := bsdLookupMsg(q, s.nextSeq())
	if err != nil {
		return Route{}, err
	}
	reply, err := s.k.Request(m)
	if errors.Is(err, syscall.ESRCH) {
		return Route{}, fmt.Errorf("route get %s: no route", q.Dst)
	}
	if err != nil {
		return Route{}, fmt.Errorf("route get %s: %w", q.Dst, err)
	}
	names, err := s.names()
	if err != nil {
		return Route{}, fmt.Errorf("route get %s: %w", q.Dst, err)
	}
	r, err := bsdRoute(reply, names)
	if err != nil {
		return Route{}, fmt.Errorf("route get %s: reply: %w", q.Dst, err)
	}
	// As on Linux (`ip route get`), the answer is for the host asked about.
	r.Dst = netip.PrefixFrom(q.Dst.WithZone(""), q.Dst.BitLen())
	return r, nil
}

// indexer resolves interface names for bsdChangeMsg.
func indexer(names map[int]string) func(string) (int, error) {
	return func(name string) (int, error) {
		for i, n := range names {
			if n == name {
				return i, nil
			}
		}
		return 0, errors.New("no such interface")
	}
}
