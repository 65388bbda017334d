package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linuxSystem reads and changes routes, rules, links and addresses over
// rtnetlink in one network namespace. Sysctls are read and written under
// /proc/sys, which shows the network namespace of the calling process (not
// the handle's).
type linuxSystem struct {
	h *netlink.Handle
	// rules reads rules with their actions (see dumpRules); nil for
	// NewSystemAt, which reads them through h and cannot tell blackhole,
	// unreachable, prohibit and nop rules apart ("action-unknown").
	rules *nl.SocketHandle
}

// NewSystem returns the System of the current network namespace.
func NewSystem() (System, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return &linuxSystem{h: h, rules: &nl.SocketHandle{Socket: s}}, nil
}

// NewSystemAt returns a System acting through h (e.g. a handle opened inside
// another network namespace with netlink.NewHandleAt). Prefer NewSystemIn:
// through a bare handle, rule actions other than lookup and goto are not
// readable.
func NewSystemAt(h *netlink.Handle) System { return &linuxSystem{h: h} }

var routeTypes = map[int]RouteType{
	unix.RTN_UNICAST: TypeUnicast, unix.RTN_LOCAL: TypeLocal, unix.RTN_BROADCAST: TypeBroadcast,
	unix.RTN_ANYCAST: TypeAnycast, unix.RTN_MULTICAST: TypeMulticast, unix.RTN_BLACKHOLE: TypeBlackhole,
	unix.RTN_UNREACHABLE: TypeUnreachable, unix.RTN_PROHIBIT: TypeProhibit, unix.RTN_THROW: TypeThrow,
}

func kernelType(t RouteType) int {
	for k, v := range routeTypes {
		if v == t {
			return k
		}
	}
	return unix.RTN_UNICAST
}

func (s *linuxSystem) Snapshot() (*Snapshot, error) {
	snap := &Snapshot{OS: "linux"}
	links, err := s.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		lk := Link{Index: a.Index, Name: a.Name, Type: l.Type(), Up: a.Flags&net.FlagUp != 0, MTU: a.MTU}
		lk.NoCarrier = lk.Up && a.RawFlags&unix.IFF_LOWER_UP == 0
		if lk.Tun = tunInfo(l); lk.Tun != nil && lk.Up && lk.Tun.Attached == 0 {
			// Carrier off: no process, unless one turned the carrier
			// off itself (TUNSETCARRIER). Only then is /proc scanned.
			lk.Tun.Attached = len(tunHolders(a.Name))
		}
		snap.Links = append(snap.Links, lk)
	}
	addrs, err := s.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		p, ok := ipNetToPrefix(a.IPNet)
		if !ok {
			continue
		}
		snap.Addresses = append(snap.Addresses, Address{Device: names[a.LinkIndex], Prefix: p})
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := s.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range rs {
			snap.Routes = append(snap.Routes, fromNetlinkRoute(r, fam, names))
		}
		rules, err := s.listRules(fam)
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		snap.Rules = append(snap.Rules, rules...)
	}
	return snap, nil
}

func famOf(fam int) Family {
	if fam == netlink.FAMILY_V6 {
		return FamilyV6
	}
	return FamilyV4
}

func fromNetlinkRoute(r netlink.Route, fam int, names map[int]string) Route {
	out := Route{Family: famOf(fam), Table: r.Table, Type: TypeOther, Device: names[r.LinkIndex],
		Metric: r.Priority, Protocol: int(r.Protocol), Scope: int(r.Scope)}
	if t, ok := routeTypes[r.Type]; ok {
		out.Type = t
	}
	switch out.Type {
	case TypeThrow, TypeBlackhole, TypeUnreachable, TypeProhibit:
		// IPv6 reports these "dev lo"; they have no device in truth, and
		// the model must match what was added without one.
		out.Device = ""
	}
	if p, ok := ipNetToPrefix(r.Dst); ok {
		out.Dst = p.Masked()
	} else if fam == netlink.FAMILY_V6 {
		out.Dst = netip.MustParsePrefix("::/0")
	} else {
		out.Dst = netip.MustParsePrefix("0.0.0.0/0")
	}
	if a, ok := netip.AddrFromSlice(r.Gw); ok && len(r.Gw) > 0 {
		out.Gateway = a.Unmap()
	} else if r.Via != nil {
		if v, ok := r.Via.(*netlink.Via); ok {
			if a, ok := netip.AddrFromSlice(v.Addr); ok {
				out.Gateway = a.Unmap()
			}
		}
	}
	if a, ok := netip.AddrFromSlice(r.Src); ok && len(r.Src) > 0 {
		out.Src = a.Unmap()
	}
	return out
}

func fromNetlinkRule(r netlink.Rule, fam int) Rule {
	out := Rule{Family: famOf(fam), Priority: r.Priority, FwMark: r.Mark, Invert: r.Invert, IIF: r.IifName,
		OIF: r.OifName, Table: r.Table, SuppressPrefixLen: r.SuppressPrefixlen, Protocol: int(r.Protocol), Action: "lookup"}
	if r.Mask != nil {
		out.FwMask = *r.Mask
	}
	if p, ok := ipNetToPrefix(r.Src); ok {
		out.From = p
	}
	if p, ok := ipNetToPrefix(r.Dst); ok {
		out.To = p
	}
	// netlink v1.3.1 does not read the action back (r.Type stays 0):
	// a goto carries its target, a lookup a table; the rest cannot be told
	// apart here (dumpRules can).
	switch {
	case r.Goto >= 0:
		out.Action, out.Goto = "goto", r.Goto
	case r.Table == 0:
		out.Action = "action-unknown"
	}
	return out
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (s *linuxSystem) Apply(c Change) error {
	switch c.Op {
	case OpAddRoute, OpDelRoute:
		if c.Route == nil {
			return fmt.Errorf("%s: no route given", c.Op)
		}
		if c.Op == OpAddRoute {
			return s.addRoute(*c.Route)
		}
		return s.delRoute(*c.Route)
	case OpAddRule, OpDelRule:
		if c.Rule == nil {
			return fmt.Errorf("%s: no rule given", c.Op)
		}
		if c.Op == OpAddRule {
			return s.addRule(*c.Rule)
		}
		return s.delRule(*c.Rule)
	case OpDelLink:
		if c.Link == nil {
			return fmt.Errorf("%s: no link given", c.Op)
		}
		return s.delDeadTun(c.Link.Name)
	case OpAddAddr, OpDelAddr:
		if c.Addr == nil {
			return fmt.Errorf("%s: no address given", c.Op)
		}
		return s.changeAddr(c)
	case OpSetSysctl:
		if c.Sysctl == nil {
			return fmt.Errorf("%s: no switch given", c.Op)
		}
		return s.writeSysctl(c.Sysctl.Name, c.Sysctl.Value)
	}
	return fmt.Errorf("unknown change %q", c.Op)
}

func (s *linuxSystem) toNetlinkRoute(r Route) (*netlink.Route, error) {
	if !r.Dst.IsValid() {
		return nil, fmt.Errorf("route has no destination")
	}
	nr := &netlink.Route{Dst: prefixToIPNet(r.Dst.Masked()), Table: r.Table, Type: kernelType(r.Type),
		Protocol: netlink.RouteProtocol(r.Protocol), Scope: netlink.Scope(r.Scope), Priority: r.Metric, Family: familyNum(r.Dst.Addr())}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Device != "" {
		l, err := s.h.LinkByName(r.Device)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", r.Device, err)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	return nr, nil
}

func familyNum(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func (s *linuxSystem) addRoute(r Route) error {
	nr, err := s.toNetlinkRoute(r)
	if err != nil {
		return fmt.Errorf("add route %s: %w", r, err)
	}
	if err := s.h.RouteAdd(nr); err != nil {
		if errors.Is(err, unix.EEXIST) {
			if m, _ := s.findRoute(r); m != nil {
				return nil // replay of an add that already happened
			}
			return fmt.Errorf("add route %s: a different route to %s already exists in table %d", r, r.Dst, r.Table)
		}
		return fmt.Errorf("add route %s: %w", r, err)
	}
	return nil
}

// findRoute returns the kernel route that matches r exactly (dst, table,
// type, protocol, gateway, device), or nil.
func (s *linuxSystem) findRoute(r Route) (*netlink.Route, error) {
	fam := familyNum(r.Dst.Addr())
	rs, err := s.h.RouteListFiltered(fam, &netlink.Route{Table: r.Table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	if links, err := s.h.LinkList(); err == nil {
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	for i := range rs {
		got := fromNetlinkRoute(rs[i], fam, names)
		if got.Table == r.Table && got.Dst == r.Dst.Masked() && got.Type == r.Type && got.Protocol == r.Protocol &&
			got.Gateway == r.Gateway && got.Device == r.Device && (r.Metric == 0 || got.Metric == r.Metric) {
			return &rs[i], nil
		}
	}
	return nil, nil
}

func (s *linuxSystem) delRoute(r Route) error {
	m, err := s.findRoute(r)
	if err != nil {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	if m == nil {
		return nil // already gone: undo is idempotent
	}
	if err := s.h.RouteDel(m); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	return nil
}

func toNetlinkRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = netlink.FAMILY_V4
	if r.Family == FamilyV6 {
		nr.Family = netlink.FAMILY_V6
	}
	nr.Priority = r.Priority
	nr.Table = r.Table
	nr.Mark = r.FwMark
	if r.FwMask != 0 {
		m := r.FwMask
		nr.Mask = &m
	}
	nr.Invert = r.Invert
	nr.IifName = r.IIF
	nr.OifName = r.OIF
	nr.SuppressPrefixlen = r.SuppressPrefixLen
	nr.Protocol = uint8(r.Protocol)
	if r.From.IsValid() {
		nr.Src = prefixToIPNet(r.From)
	}
	if r.To.IsValid() {
		nr.Dst = prefixToIPNet(r.To)
	}
	switch r.Action {
	case "blackhole":
		nr.Type = unix.FR_ACT_BLACKHOLE
	case "unreachable":
		nr.Type = unix.FR_ACT_UNREACHABLE
	case "prohibit":
		nr.Type = unix.FR_ACT_PROHIBIT
	}
	return nr
}

func (s *linuxSystem) findRule(r Rule) (bool, error) {
	fam := netlink.FAMILY_V4
	if r.Family == FamilyV6 {
		fam = netlink.FAMILY_V6
	}
	rules, err := s.listRules(fam)
	if err != nil {
		return false, err
	}
	for _, k := range rules {
		if SameRule(k, r) {
			return true, nil
		}
	}
	return false, nil
}

// listRules reads the rules of family fam, with their actions when the
// System has its own rule socket (see dumpRules).
func (s *linuxSystem) listRules(fam int) ([]Rule, error) {
	if s.rules != nil {
		return dumpRules(s.rules, fam)
	}
	rules, err := s.h.RuleList(fam)
	if err != nil {
		return nil, err
	}
	var out []Rule
	for _, r := range rules {
		if r.Family == fam {
			out = append(out, fromNetlinkRule(r, fam))
		}
	}
	return out, nil
}

func (s *linuxSystem) addRule(r Rule) error {
	if ok, err := s.findRule(r); err != nil {
		return fmt.Errorf("add rule %s: %w", r, err)
	} else if ok {
		return nil
	}
	if err := s.h.RuleAdd(toNetlinkRule(r)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add rule %s: %w", r, err)
	}
	return nil
}

func (s *linuxSystem) delRule(r Rule) error {
	ok, err := s.findRule(r)
	if err != nil {
		return fmt.Errorf("delete rule %s: %w", r, err)
	}
	if !ok {
		return nil
	}
	if err := s.h.RuleDel(toNetlinkRule(r)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete rule %s: %w", r, err)
	}
	return nil
}

func (s *linuxSystem) Lookup(q Query) (Route, error) {
	if !q.Dst.IsValid() {
		return Route{}, errors.New("lookup: no destination")
	}
	opts := &netlink.RouteGetOptions{Mark: q.FwMark, Iif: q.IIF, FIBMatch: q.FIBMatch}
	if q.Src.IsValid() {
		opts.SrcAddr = q.Src.AsSlice()
	}
	rs, err := s.h.RouteGetWithOptions(q.Dst.AsSlice(), opts)
	if err != nil {
		return Route{}, fmt.Errorf("route get %s: %w", q.Dst, err)
	}
	if len(rs) == 0 {
		return Route{}, fmt.Errorf("route get %s: no route", q.Dst)
	}
	names := map[int]string{}
	if l, err := s.h.LinkByIndex(rs[0].LinkIndex); err == nil {
		names[rs[0].LinkIndex] = l.Attrs().Name
	}
	fam := familyNum(q.Dst)
	out := fromNetlinkRoute(rs[0], fam, names)
	if !q.FIBMatch {
		out.Dst = netip.PrefixFrom(q.Dst, q.Dst.BitLen())
	}
	return out, nil
}

// tunInfo reads whether a tun/tap device is persistent and whether a
// process holds it. How attachment is detected: the tun driver turns the
// carrier on when a descriptor attaches (TUNSETIFF) and off when the last
// one detaches, so for a device that is up, no IFF_LOWER_UP means no
// process. Multi-queue devices also report their attached queues
// (IFLA_TUN_NUM_QUEUES and _NUM_DISABLED_QUEUES; the kernel sends them for
// multi-queue devices only), used when present. Both are read in the
// device's own namespace from its link message. A process can still turn
// the carrier off itself (TUNSETCARRIER), so a snapshot counts the holders
// in /proc/*/fdinfo (tunHolders) for an up device without carrier, and
// deleting the device checks both once more.
func tunInfo(l netlink.Link) *TunInfo {
	t, ok := l.(*netlink.Tuntap)
	if !ok {
		return nil
	}
	a := l.Attrs()
	ti := &TunInfo{Persistent: !t.NonPersist}
	switch {
	case t.Flags&netlink.TUNTAP_MULTI_QUEUE != 0:
		ti.Attached = t.Queues + t.DisabledQueues
	case a.RawFlags&unix.IFF_LOWER_UP != 0:
		ti.Attached = 1
	}
	return ti
}

// tunHolders lists the processes with a descriptor open on a tun/tap
// device called name: /proc/PID/fdinfo/FD of a /dev/net/tun descriptor
// has an "iff:\t<name>" line. Names are per namespace, so a holder of
// another namespace's device of the same name counts too: for a refusal
// that errs on the safe side.
func tunHolders(name string) []string {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	var out []string
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err != nil || target != "/dev/net/tun" {
			continue
		}
		pid := strings.Split(fd, "/")[2]
		b, err := os.ReadFile(strings.Replace(fd, "/fd/", "/fdinfo/", 1))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "iff" && strings.TrimSpace(v) == name && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// delDeadTun deletes a persistent tun/tap device that no process holds,
// checking again at the moment of deletion: a device a process attached
// to since the snapshot, or any other kind of link, is refused.
func (s *linuxSystem) delDeadTun(name string) error {
	l, err := s.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil // already gone
		}
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	ti := tunInfo(l)
	switch {
	case ti == nil:
		return fmt.Errorf("delete link %s: it is a %s device, not a tun/tap; refusing", name, l.Type())
	case !ti.Persistent:
		return fmt.Errorf("delete link %s: not persistent (it goes with its process); refusing", name)
	case ti.Attached > 0:
		return fmt.Errorf("delete link %s: a process is attached now (carrier on); refusing", name)
	}
	if pids := tunHolders(name); len(pids) > 0 {
		return fmt.Errorf("delete link %s: process %s has a tun descriptor named %s open (/proc/PID/fdinfo); refusing", name, strings.Join(pids, ","), name)
	}
	if err := s.h.LinkDel(l); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// changeAddr adds (replacing: idempotent) or deletes an address; deleting
// one already gone, or on a device already gone, is not an error.
func (s *linuxSystem) changeAddr(c Change) error {
	a := *c.Addr
	l, err := s.h.LinkByName(a.Device)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if c.Op == OpDelAddr && errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("%s: device %s: %w", c, a.Device, err)
	}
	na := &netlink.Addr{IPNet: prefixToIPNet(a.Prefix)}
	if a.NoDAD && a.Prefix.Addr().Is6() {
		na.Flags = unix.IFA_F_NODAD
	}
	if a.NoPrefixRoute {
		na.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if c.Op == OpAddAddr {
		if err := s.h.AddrReplace(l, na); err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		return nil
	}
	if err := s.h.AddrDel(l, na); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("%s: %w", c, err)
	}
	return nil
}

// ReadSysctl implements SysctlSystem.
func (s *linuxSystem) ReadSysctl(name string) (string, error) {
	if !ValidSysctl(name) {
		return "", fmt.Errorf("sysctl %q: not a switch under net/", name)
	}
	b, err := os.ReadFile(filepath.Join("/proc/sys", name))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s *linuxSystem) writeSysctl(name, value string) error {
	if !ValidSysctl(name) {
		return fmt.Errorf("sysctl %q: not a switch under net/", name)
	}
	if cur, err := s.ReadSysctl(name); err == nil && cur == value {
		return nil // nothing to write (a read-only /proc/sys in a container)
	}
	if err := os.WriteFile(filepath.Join("/proc/sys", name), []byte(value), 0o644); err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// AddTunnelAddresses puts host addresses on a tunnel device of this
// namespace: IFA_F_NOPREFIXROUTE (the kernel adds no route of its own, so
// every route of the tunnel is one the engine journaled) and, for IPv6,
// NODAD (usable at once; nothing else on a point-to-point tunnel can hold
// it). The addresses go with the device, so they are not journaled.
func AddTunnelAddresses(device string, addrs []netip.Prefix) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	s := &linuxSystem{h: h}
	for _, a := range addrs {
		c := Change{Op: OpAddAddr, Addr: &Address{Device: device, Prefix: a, NoDAD: true, NoPrefixRoute: true}}
		if err := s.changeAddr(c); err != nil {
			return err
		}
	}
	return nil
}
