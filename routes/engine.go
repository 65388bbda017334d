package routes

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// Engine makes every route and rule change through the journal, and puts the
// table back exactly: on End, and after a crash on the next Recover.
type Engine struct {
	sys   System
	dir   string
	log   *slog.Logger
	owner Owner

	mu sync.Mutex
	j  *Journal

	// afterIntent, when set (tests), runs between an intent record and its
	// change, where a crash is most delicate.
	afterIntent func(Change)
	// afterApply, when set (tests), runs between a change and its done record.
	afterApply func(Change)
	// afterUndo, when set (tests), runs after each undo or sweep of restore.
	afterUndo func(Change)
}

// Report says what Recover or End did.
type Report struct {
	Undone   []Change `json:"undone,omitempty"`
	Swept    []Change `json:"swept,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// Empty reports whether nothing was done and nothing is wrong.
func (r *Report) Empty() bool {
	return r == nil || len(r.Undone)+len(r.Swept)+len(r.Problems) == 0
}

// SavedState is what Begin writes before the first change: the snapshot and
// the routes the kernel picked for the destinations that must keep working.
type SavedState struct {
	Snapshot *Snapshot        `json:"snapshot"`
	Lookups  map[string]Route `json:"lookups"`
}

// NewEngine returns the client's Engine (ClientOwner), keeping its journal
// and snapshot in stateDir.
func NewEngine(sys System, stateDir string) *Engine {
	return NewOwnerEngine(sys, stateDir, ClientOwner)
}

// NewOwnerEngine returns an Engine making, sweeping and replaying owner's
// objects only, keeping its journal and snapshot in stateDir.
func NewOwnerEngine(sys System, stateDir string, owner Owner) *Engine {
	e := &Engine{sys: sys, dir: stateDir, log: slog.Default(), owner: owner}
	if j, ok := sys.(journalScoped); ok { // macOS: RTF_PROTO1 is shared (bsdowner.go)
		j.scopeToJournal(e.journalPath())
	}
	return e
}

// Owner returns whose objects e makes.
func (e *Engine) Owner() Owner { return e.owner }

// Hooks are test seams run around each change of Apply (one journal record
// per change while set): AfterIntent between the intent record and the
// change, AfterApply between the change and its done record.
type Hooks struct {
	AfterIntent func(Change)
	AfterApply  func(Change)
	// AfterUndo runs after each change End or Recover makes.
	AfterUndo func(Change)
}

// SetHooks installs h (tests: kill points of a crash test).
func (e *Engine) SetHooks(h Hooks) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.afterIntent, e.afterApply, e.afterUndo = h.AfterIntent, h.AfterApply, h.AfterUndo
}

// SetSysctl turns switch name (below /proc/sys) to value through the
// journal, recording the value it had, which End and Recover put back. A
// switch already at value is not written (a container's /proc/sys is
// read-only, and nothing needs restoring).
func (e *Engine) SetSysctl(name, value string) (changed bool, err error) {
	ss, ok := e.sys.(SysctlSystem)
	if !ok {
		return false, fmt.Errorf("sysctl %s: this system cannot read kernel switches", name)
	}
	old, err := ss.ReadSysctl(name)
	if err != nil {
		return false, err
	}
	if old == value {
		return false, nil
	}
	return true, e.Apply(Change{Op: OpSetSysctl, Sysctl: &Sysctl{Name: name, Value: value, Old: old}})
}

func (e *Engine) journalPath() string  { return filepath.Join(e.dir, "journal") }
func (e *Engine) snapshotPath() string { return filepath.Join(e.dir, "snapshot.json") }

// Active reports whether a journal exists: a session runs, or one crashed.
func (e *Engine) Active() bool {
	_, err := os.Stat(e.journalPath())
	return err == nil
}

// Recover replays a journal left by a previous session in reverse, sweeps
// every item carrying our protocol, verifies and removes the journal. It is a
// no-op on a clean system.
func (e *Engine) Recover() (*Report, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.j != nil {
		// This engine's own session is running: replaying its journal
		// would tear it down under it (End does that, on purpose).
		return &Report{}, errors.New("recover: a route session is active (End it instead)")
	}
	return e.restore()
}

// Begin starts a session: recovers what a crash left, saves the snapshot and
// the lookups to verify later, and opens a fresh journal.
func (e *Engine) Begin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.j != nil {
		return errors.New("a route session is already active")
	}
	rep, snap, err := e.restoreSnap()
	if err != nil {
		return fmt.Errorf("recover previous session: %w", err)
	} else if !rep.Empty() {
		e.log.Warn("recovered routes left by a previous session", "undone", len(rep.Undone), "swept", len(rep.Swept), "problems", rep.Problems)
	}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if snap == nil {
		if snap, err = e.sys.Snapshot(); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	saved := SavedState{Snapshot: snap, Lookups: e.lookups(snap)}
	// The snapshot only verifies the restore (a lost or torn one is the
	// problem "snapshot unreadable", never a failure): written without
	// fsync; the journal's directory is fsynced by OpenJournal anyway.
	if err := writeFile(e.snapshotPath(), saved); err != nil {
		return err
	}
	j, err := OpenJournal(e.journalPath())
	if err != nil {
		return err
	}
	e.j = j
	return nil
}

// Apply makes each change in order: intent (fsynced), the change, done. It
// stops at the first error; the journal still lets End undo what was made.
func (e *Engine) Apply(changes ...Change) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.j == nil {
		return errors.New("apply: no route session (Begin first)")
	}
	for _, c := range changes {
		if (c.Op == OpAddRoute || c.Op == OpAddRule) && !e.owner.Owns(c) {
			// What we add must carry our marker, or no sweep finds it.
			return fmt.Errorf("apply %s: it does not carry %s's marker (%s)", c, e.owner.Name, e.owner.describe())
		}
	}
	if len(changes) > 1 && e.afterIntent == nil && e.afterApply == nil {
		// Many changes (a large push): one fsync for the intents and
		// one for the done records, not two per change.
		first, err := e.j.Intents(changes)
		if err != nil {
			return err
		}
		for i, c := range changes {
			if err := e.sys.Apply(c); err != nil {
				if i > 0 {
					e.j.Dones(first, i)
				}
				return err
			}
		}
		return e.j.Dones(first, len(changes))
	}
	for _, c := range changes {
		seq, err := e.j.Intent(c)
		if err != nil {
			return err
		}
		if e.afterIntent != nil {
			e.afterIntent(c)
		}
		if err := e.sys.Apply(c); err != nil {
			return err
		}
		if e.afterApply != nil {
			e.afterApply(c)
		}
		if err := e.j.Done(seq); err != nil {
			return err
		}
	}
	return nil
}

// End undoes the session and verifies the result against the snapshot.
func (e *Engine) End() (*Report, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.j != nil {
		e.j.Close()
		e.j = nil
	}
	return e.restore()
}

// Reconcile makes our routes and rules equal desired: adds what is missing
// first (no gap in coverage), then removes what is no longer wanted; every
// change goes through the journal.
//
// Address changes in desired are reconciled per device: a device named by
// one of them keeps exactly the desired addresses (its IPv6 link-local
// address aside).
func (e *Engine) Reconcile(desired []Change) (added, removed []Change, err error) {
	snap, err := e.sys.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	return e.ReconcileFrom(snap, desired)
}

// ReconcileFrom is Reconcile against snap, a snapshot the caller has just
// read (and planned desired from), so the state is not read twice.
func (e *Engine) ReconcileFrom(snap *Snapshot, desired []Change) (added, removed []Change, err error) {
	routes, rules := e.owner.Items(snap)
	added, removed = diffOwned(desired, routes, rules)
	aa, ar := diffAddrs(desired, snap)
	added, removed = append(added, aa...), append(removed, ar...)
	// A route that takes the place of one of ours (same table, destination
	// and metric, say a pin moving to a new gateway) can only be added
	// after that one is gone: the kernel keeps one route per key. Only
	// that removal goes first.
	slots := map[slotKey]bool{}
	for _, c := range added {
		if c.Route != nil {
			slots[slotOf(*c.Route)] = true
		}
	}
	var first, later []Change
	for _, r := range removed {
		if r.Route != nil && slots[slotOf(*r.Route)] {
			first = append(first, r)
		} else {
			later = append(later, r)
		}
	}
	toDel, toAdd := first, added
	if ch, ok := e.sys.(routeChanger); ok {
		if toDel, toAdd, err = e.makeBeforeBreak(ch, first, added); err != nil {
			return nil, first, err
		}
	}
	if err := e.Apply(toDel...); err != nil {
		return nil, first, err
	}
	if err := e.Apply(toAdd...); err != nil {
		return added, first, err
	}
	return added, removed, e.Apply(later...)
}

// routeChanger is a System that can move a route to a new next hop in
// place, under its key, with one kernel write (macOS: RTM_CHANGE, as
// Mozilla VPN's macosroutemonitor moves its exclusion routes): the route
// never leaves the table. Changeable says whether old can become nw that
// way (XNU's RTM_CHANGE sets the gateway and interface, never the flags).
type routeChanger interface {
	Changeable(old, nw Route) bool
	ChangeRoute(old, nw Route) error
}

// makeBeforeBreak replaces each route of first by the addition taking its
// key without a moment where neither is in the table: in place when the
// System can (routeChanger), else, for a host route (the endpoint pin
// going from a blackhole back to a router), through a bridge: the new
// route one bit shorter is added first, so that between the delete and
// the add the host still resolves there and not into the tunnel's halves.
// It returns the removals and additions left to do in the plain order.
func (e *Engine) makeBeforeBreak(ch routeChanger, first, added []Change) (toDel, toAdd []Change, err error) {
	toAdd = slices.Clone(added)
	for _, old := range first {
		i := slices.IndexFunc(toAdd, func(c Change) bool { return c.Route != nil && slotOf(*c.Route) == slotOf(*old.Route) })
		if i < 0 {
			toDel = append(toDel, old)
			continue
		}
		nw := toAdd[i]
		switch {
		case ch.Changeable(*old.Route, *nw.Route):
			err = e.change(ch, old, nw)
		case old.Route.Dst.IsSingleIP() && old.Route.Dst.Bits() > 0:
			err = e.bridge(old, nw)
		default:
			toDel = append(toDel, old)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		toAdd = slices.Delete(toAdd, i, i+1)
	}
	return toDel, toAdd, nil
}

// change moves old to nw in place. It is journaled as the delete and the
// add it stands for, so an undo after a crash is the same as for those.
func (e *Engine) change(ch routeChanger, old, nw Change) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.j == nil {
		return errors.New("apply: no route session (Begin first)")
	}
	seq, err := e.j.Intents([]Change{old, nw})
	if err != nil {
		return err
	}
	if err := ch.ChangeRoute(*old.Route, *nw.Route); err != nil {
		return err
	}
	return e.j.Dones(seq, 2)
}

// bridge replaces the host route old by nw, which the kernel cannot change
// in place, with nw's twin one bit shorter holding the host meanwhile.
// Every step is journaled: a crash in between is undone like any other.
func (e *Engine) bridge(old, nw Change) error {
	b := *nw.Route
	b.Dst = netip.PrefixFrom(b.Dst.Addr(), b.Dst.Bits()-1).Masked()
	add := Change{Op: OpAddRoute, Route: &b}
	if err := e.Apply(add); err != nil {
		// Another program's route holds that key: replace in the plain
		// order, as without a bridge.
		e.log.Warn("re-pin without a bridge", "route", nw.Route.String(), "err", err)
		return e.Apply(old, nw)
	}
	if err := e.Apply(old, nw); err != nil {
		return err
	}
	return e.Apply(Change{Op: OpDelRoute, Route: &b})
}

// diffAddrs compares the desired addresses with those on their devices.
func diffAddrs(desired []Change, snap *Snapshot) (added, removed []Change) {
	want := map[string][]netip.Prefix{}
	for _, c := range desired {
		if c.Addr != nil && c.Op == OpAddAddr {
			want[c.Addr.Device] = append(want[c.Addr.Device], c.Addr.Prefix)
			if !slices.ContainsFunc(snap.Addresses, func(a Address) bool { return a.Device == c.Addr.Device && a.Prefix == c.Addr.Prefix }) {
				added = append(added, c)
			}
		}
	}
	for _, a := range snap.Addresses {
		ps, ok := want[a.Device]
		if !ok || slices.Contains(ps, a.Prefix) || a.Prefix.Addr().IsLinkLocalUnicast() {
			continue
		}
		a := a
		removed = append(removed, Change{Op: OpDelAddr, Addr: &a})
	}
	return added, removed
}

type slotKey struct {
	table  int
	dst    netip.Prefix
	metric int
	scoped bool
}

func slotOf(r Route) slotKey { return slotKey{r.Table, r.Dst.Masked(), r.Metric, Scoped(r)} }

// matchKey is what sameRoute compares, but the metric (a wanted metric of
// 0 accepts any the kernel filled in).
type matchKey struct {
	table   int
	dst     netip.Prefix
	typ     RouteType
	proto   int
	gateway netip.Addr
	device  string
}

func matchOf(r Route) matchKey {
	return matchKey{r.Table, r.Dst.Masked(), r.Type, r.Protocol, r.Gateway, r.Device}
}

func normRule(r Rule) Rule {
	if r.Action == "" {
		r.Action = "lookup"
	}
	if r.FwMark != 0 && r.FwMask == 0 {
		r.FwMask = 0xffffffff
	}
	return r
}

// diffOwned compares the desired changes with the routes and rules we own:
// what to add and what to remove, through maps (linear in their number,
// where pairwise comparison made 10,000 pushed prefixes cost seconds).
func diffOwned(desired []Change, routes []Route, rules []Rule) (added, removed []Change) {
	have := map[matchKey][]int{} // metrics
	for _, r := range routes {
		k := matchOf(r)
		have[k] = append(have[k], r.Metric)
	}
	haveRule := map[Rule]bool{}
	for _, r := range rules {
		haveRule[normRule(r)] = true
	}
	want := map[matchKey][]int{}
	wantRule := map[Rule]bool{}
	for _, c := range desired {
		switch {
		case c.Route != nil:
			k := matchOf(*c.Route)
			want[k] = append(want[k], c.Route.Metric)
			if !slices.ContainsFunc(have[k], func(m int) bool { return c.Route.Metric == 0 || c.Route.Metric == m }) {
				added = append(added, c)
			}
		case c.Rule != nil:
			n := normRule(*c.Rule)
			wantRule[n] = true
			if !haveRule[n] {
				added = append(added, c)
			}
		}
	}
	for _, r := range routes {
		if !slices.ContainsFunc(want[matchOf(r)], func(m int) bool { return m == 0 || m == r.Metric }) {
			removed = append(removed, Change{Op: OpDelRoute, Route: &r})
		}
	}
	for _, r := range rules {
		if !wantRule[normRule(r)] {
			removed = append(removed, Change{Op: OpDelRule, Rule: &r})
		}
	}
	return added, removed
}

// Owned returns the routes and rules carrying the owner's protocol right now.
func (e *Engine) Owned() ([]Route, []Rule, error) {
	snap, err := e.sys.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	rs, rules := e.owner.Items(snap)
	return rs, rules, nil
}

// OwnedItems returns the routes and rules of snap that carry the client's
// protocol (ClientOwner.Items).
func OwnedItems(snap *Snapshot) ([]Route, []Rule) { return ClientOwner.Items(snap) }

// LinkAddresses are the addresses on the named devices, in snapshot order.
func LinkAddresses(snap *Snapshot, devices ...string) []Address {
	var out []Address
	for _, a := range snap.Addresses {
		if slices.Contains(devices, a.Device) {
			out = append(out, a)
		}
	}
	return out
}

// OwnedDevices are the devices ClearPath's routes (protocol 197) point at,
// plus extra (the running agent's tunnel, which may carry none yet).
func OwnedDevices(snap *Snapshot, extra ...string) []string {
	var out []string
	add := func(d string) {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	for _, d := range extra {
		add(d)
	}
	for _, r := range snap.Routes {
		if r.Protocol == Protocol {
			add(r.Device)
		}
	}
	return out
}

// TunnelAddresses returns the addresses on the tunnel device that are not
// what the gateway assigned: another address, or one that is not a single
// host. The link-local fe80::/64 the kernel may give a link is not counted.
func TunnelAddresses(snap *Snapshot, device string, assigned []netip.Prefix) []Address {
	var out []Address
	for _, a := range LinkAddresses(snap, device) {
		p := a.Prefix
		if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() && p.Bits() == 64 {
			continue
		}
		if p.IsSingleIP() && slices.Contains(assigned, p) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// OursChange reports whether c acts on a route or rule of ClearPath's: one
// carrying protocol 197 or living in (a rule: pointing at) table 7411.
// Replay and sweeps act on nothing else.
// (ClientOwner.Owns; an address or sysctl is not the client's).
func OursChange(c Change) bool {
	if c.Addr != nil || c.Sysctl != nil {
		return false
	}
	return ClientOwner.Owns(c)
}

// Inverse returns the change that undoes c.
func Inverse(c Change) Change {
	if c.Op == OpSetSysctl && c.Sysctl != nil {
		s := Sysctl{Name: c.Sysctl.Name, Value: c.Sysctl.Old, Old: c.Sysctl.Value}
		return Change{Op: OpSetSysctl, Sysctl: &s}
	}
	inv := map[Op]Op{OpAddRoute: OpDelRoute, OpDelRoute: OpAddRoute, OpAddRule: OpDelRule, OpDelRule: OpAddRule,
		OpAddAddr: OpDelAddr, OpDelAddr: OpAddAddr}
	return Change{Op: inv[c.Op], Route: c.Route, Rule: c.Rule, Addr: c.Addr}
}

func (e *Engine) restore() (*Report, error) {
	rep, _, err := e.restoreSnap()
	return rep, err
}

// restoreSnap is restore, also returning the routing state it read for the
// sweep when it changed nothing since (nil otherwise): Begin starts from
// it instead of reading the state once more.
func (e *Engine) restoreSnap() (*Report, *Snapshot, error) {
	rep := &Report{}
	recs, err := ReadJournal(e.journalPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, nil, fmt.Errorf("read journal: %w", err)
	}
	var saved *SavedState
	if b, err := readNoFollow(e.snapshotPath()); err == nil {
		var s SavedState
		if err := json.Unmarshal(b, &s); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("snapshot unreadable (%v): cannot verify", err))
		} else {
			saved = &s
		}
	}
	links := map[string]bool{}
	if len(recs) > 0 { // a clean start has nothing to replay: no read
		if snap, err := e.sys.Snapshot(); err == nil {
			for _, l := range snap.Links {
				links[l.Name] = true
			}
		}
	}
	// Undo every intent, newest first, done or not: an intent without its
	// done record may or may not have reached the kernel, and undoing is
	// idempotent either way.
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.Phase != "intent" {
			continue
		}
		undo := Inverse(*r.Change)
		if !e.owner.Owns(undo) {
			// The journal is root's, but replay must not become a way to
			// delete or add what other programs own (README: foreign
			// routes are never touched).
			rep.Problems = append(rep.Problems, fmt.Sprintf("skipped journal record %d: %s is not %s's (%s)", r.Seq, r.Change, e.owner.Name, e.owner.describe()))
			continue
		}
		if undo.Addr != nil && !links[undo.Addr.Device] {
			continue // the kernel removed the address with its link
		}
		if undo.Op == OpAddRoute && undo.Route.Device != "" && !links[undo.Route.Device] {
			rep.Problems = append(rep.Problems, fmt.Sprintf("not restoring %s: device %s is gone", undo.Route, undo.Route.Device))
			continue
		}
		if undo.Op == OpDelRoute && undo.Route.Device != "" && !links[undo.Route.Device] {
			continue // the kernel removed it with its link
		}
		if err := e.sys.Apply(undo); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("undo %s: %v", r.Change, err))
			continue
		}
		rep.Undone = append(rep.Undone, undo)
		if e.afterUndo != nil {
			e.afterUndo(undo)
		}
	}
	// Sweep: nothing of ours may remain outside a session.
	swept, err := e.sys.Snapshot()
	if err != nil {
		return rep, nil, fmt.Errorf("sweep: %w", err)
	}
	routes, rules := e.owner.Items(swept)
	var sweep []Change
	for _, r := range routes {
		sweep = append(sweep, Change{Op: OpDelRoute, Route: &r})
	}
	for _, r := range rules {
		sweep = append(sweep, Change{Op: OpDelRule, Rule: &r})
	}
	for _, c := range sweep {
		if err := e.sys.Apply(c); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("sweep (%s): %v", c, err))
			continue
		}
		rep.Swept = append(rep.Swept, c)
		if e.afterUndo != nil {
			e.afterUndo(c)
		}
	}
	if saved != nil {
		now, err := e.sys.Snapshot()
		if err == nil {
			nowLookups := e.lookups(now) // once, not once per key
			for key, before := range saved.Lookups {
				after, ok := nowLookups[key]
				if !ok {
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s resolved via %s before, does not resolve now", key, before))
				} else if after.Device != before.Device || after.Gateway != before.Gateway {
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s resolved via %s before, via %s now", key, before, after))
				}
			}
		}
	}
	if len(rep.Problems) == 0 || !hasFailure(rep) {
		for _, p := range []string{e.journalPath(), e.snapshotPath()} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return rep, nil, fmt.Errorf("remove %s: %w", p, err)
			}
		}
	}
	if len(rep.Undone) > 0 || len(rep.Swept) > 0 {
		swept = nil // changed since: read it again
	}
	return rep, swept, nil
}

// hasFailure reports whether an undo or sweep failed (then the journal is
// kept so a later run can retry); a verification note alone does not.
func hasFailure(rep *Report) bool {
	for _, p := range rep.Problems {
		if len(p) > 5 && (p[:5] == "undo " || p[:6] == "sweep ") {
			return true
		}
	}
	return false
}

// lookups resolves the destinations that must keep working across a
// session: the default routes of both families and one host in each LAN
// prefix, as the kernel would route them.
func (e *Engine) lookups(snap *Snapshot) map[string]Route {
	out := map[string]Route{}
	dsts := []netip.Addr{netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("2001:db8:ffff::200")}
	for _, a := range snap.Addresses {
		p := a.Prefix.Masked()
		if a.Device == "lo" || p.Addr().IsLinkLocalUnicast() || p.IsSingleIP() || a.Prefix.Addr().IsLoopback() {
			continue
		}
		dsts = append(dsts, p.Addr().Next())
	}
	for _, d := range dsts {
		key := d.String()
		if d == dsts[0] {
			key = "default (IPv4)"
		} else if d == dsts[1] {
			key = "default (IPv6)"
		}
		if r, err := e.sys.Lookup(Query{Dst: d}); err == nil {
			out[key] = r
		}
	}
	return out
}

// writeFile writes v as JSON to path through a temporary file renamed
// over it (a reader sees the old or the new whole file), without fsync.
func writeFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Diff lists what is in b and not in a (Added) and in a and not in b (Removed).
type Diff struct {
	AddedRoutes, RemovedRoutes []Route
	AddedRules, RemovedRules   []Rule
}

// Empty reports whether the two snapshots route and rule alike.
func (d Diff) Empty() bool {
	return len(d.AddedRoutes)+len(d.RemovedRoutes)+len(d.AddedRules)+len(d.RemovedRules) == 0
}

// Compare diffs two snapshots' routes and rules.
func Compare(a, b *Snapshot) Diff {
	var d Diff
	ar, br := map[routeKey]Route{}, map[routeKey]Route{}
	for _, r := range a.Routes {
		ar[keyOf(r)] = r
	}
	for _, r := range b.Routes {
		br[keyOf(r)] = r
		if _, ok := ar[keyOf(r)]; !ok {
			d.AddedRoutes = append(d.AddedRoutes, r)
		}
	}
	for _, r := range a.Routes {
		if _, ok := br[keyOf(r)]; !ok {
			d.RemovedRoutes = append(d.RemovedRoutes, r)
		}
	}
	ru := map[string]bool{}
	for _, r := range a.Rules {
		ru[r.String()] = true
	}
	bu := map[string]bool{}
	for _, r := range b.Rules {
		bu[r.String()] = true
		if !ru[r.String()] {
			d.AddedRules = append(d.AddedRules, r)
		}
	}
	for _, r := range a.Rules {
		if !bu[r.String()] {
			d.RemovedRules = append(d.RemovedRules, r)
		}
	}
	return d
}

type routeKey struct {
	fam           Family
	table         int
	typ           RouteType
	dst           netip.Prefix
	gw, src       netip.Addr
	dev           string
	metric, proto int
}

func keyOf(r Route) routeKey {
	return routeKey{r.Family, r.Table, r.Type, r.Dst, r.Gateway, r.Src, r.Device, r.Metric, r.Protocol}
}
