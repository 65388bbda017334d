// Package routestest is an in-memory routes.System for unit tests of code
// above the route engine (the agent, the gateway's networks): it keeps
// routes, rules, links and addresses in memory, applies changes with the
// kernel's idempotence rules as the engine expects them, answers lookups with
// the same policy walk doctor uses, and can be told to fail a change.
//
// It is a fake at the kernel boundary, as wireguard-go's tun/tuntest is for
// TUN devices; the real netlink backend is tested in namespaces.
package routestest

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// System is an in-memory routes.System. The zero value is an empty Linux
// host; use New for one with a loopback link.
type System struct {
	mu   sync.Mutex
	snap routes.Snapshot
	// Fail, when set, is asked before each change; a non-nil error is
	// returned instead of applying it (a kernel refusal, a full table).
	Fail func(routes.Change) error
	// Applied records every change made, in order (failed ones excluded).
	Applied []routes.Change
	// sysctls holds the kernel switches (names below /proc/sys).
	sysctls map[string]string
}

// SetSysctl sets a switch as the host had it (or another program set it).
func (s *System) SetSysctl(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sysctls == nil {
		s.sysctls = map[string]string{}
	}
	s.sysctls[name] = value
}

// Sysctl returns a switch's value ("" when never set).
func (s *System) Sysctl(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sysctls[name]
}

// ReadSysctl implements routes.SysctlSystem; a switch never set reads "0".
func (s *System) ReadSysctl(name string) (string, error) {
	if !routes.ValidSysctl(name) {
		return "", fmt.Errorf("sysctl %q: not a switch under net/", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.sysctls[name]; ok {
		return v, nil
	}
	return "0", nil
}

// New returns a System holding snap (copied); nil means a host with only lo.
func New(snap *routes.Snapshot) *System {
	s := &System{}
	if snap == nil {
		snap = &routes.Snapshot{OS: "linux", Links: []routes.Link{{Index: 1, Name: "lo", Type: "loopback", Up: true}}}
	}
	s.snap = clone(snap)
	return s
}

func clone(s *routes.Snapshot) routes.Snapshot {
	c := *s
	c.Routes = slices.Clone(s.Routes)
	c.Rules = slices.Clone(s.Rules)
	c.Links = slices.Clone(s.Links)
	c.Addresses = slices.Clone(s.Addresses)
	return c
}

// Snapshot implements routes.System.
func (s *System) Snapshot() (*routes.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := clone(&s.snap)
	if c.OS == "" {
		c.OS = "linux"
	}
	return &c, nil
}

// AddLink adds (or replaces) a link, as creating a TUN device would.
func (s *System) AddLink(l routes.Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Links = slices.DeleteFunc(s.snap.Links, func(x routes.Link) bool { return x.Name == l.Name })
	if l.Index == 0 {
		l.Index = len(s.snap.Links) + 100
	}
	s.snap.Links = append(s.snap.Links, l)
}

// RemoveLink removes a link with its addresses and the routes through it, as
// the kernel does when a device goes.
func (s *System) RemoveLink(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Links = slices.DeleteFunc(s.snap.Links, func(x routes.Link) bool { return x.Name == name })
	s.snap.Addresses = slices.DeleteFunc(s.snap.Addresses, func(a routes.Address) bool { return a.Device == name })
	s.snap.Routes = slices.DeleteFunc(s.snap.Routes, func(r routes.Route) bool { return r.Device == name })
}

// Set replaces the whole state (another program changed the table).
func (s *System) Set(snap *routes.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = clone(snap)
}

func (s *System) hasLink(name string) bool {
	return slices.ContainsFunc(s.snap.Links, func(l routes.Link) bool { return l.Name == name })
}

func sameRoute(a, b routes.Route) bool {
	return a.Table == b.Table && a.Dst.Masked() == b.Dst.Masked() && a.Type == b.Type && a.Protocol == b.Protocol &&
		a.Gateway == b.Gateway && a.Device == b.Device && (b.Metric == 0 || a.Metric == b.Metric)
}

// Apply implements routes.System with the netlink backend's semantics:
// adding an identical item or deleting a missing one succeeds; adding a
// different route with the same table, destination and metric fails.
func (s *System) Apply(c routes.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		if err := s.Fail(c); err != nil {
			return err
		}
	}
	switch c.Op {
	case routes.OpAddRoute, routes.OpDelRoute:
		if c.Route == nil {
			return fmt.Errorf("%s: no route given", c.Op)
		}
		r := *c.Route
		r.Dst = r.Dst.Masked()
		if r.Device != "" && !s.hasLink(r.Device) {
			return fmt.Errorf("%s %s: device %s: link not found", c.Op, r, r.Device)
		}
		i := slices.IndexFunc(s.snap.Routes, func(x routes.Route) bool { return sameRoute(x, r) })
		if c.Op == routes.OpDelRoute {
			if i >= 0 {
				s.snap.Routes = slices.Delete(s.snap.Routes, i, i+1)
			}
			break
		}
		if i >= 0 {
			break
		}
		if slices.ContainsFunc(s.snap.Routes, func(x routes.Route) bool {
			return x.Table == r.Table && x.Dst == r.Dst && x.Metric == r.Metric
		}) {
			return fmt.Errorf("add route %s: a different route to %s already exists in table %d", r, r.Dst, r.Table)
		}
		if r.Family == routes.FamilyAll {
			r.Family = routes.FamilyV4
			if r.Dst.Addr().Is6() {
				r.Family = routes.FamilyV6
			}
		}
		s.snap.Routes = append(s.snap.Routes, r)
	case routes.OpAddRule, routes.OpDelRule:
		if c.Rule == nil {
			return fmt.Errorf("%s: no rule given", c.Op)
		}
		i := slices.IndexFunc(s.snap.Rules, func(x routes.Rule) bool { return routes.SameRule(x, *c.Rule) })
		if c.Op == routes.OpDelRule {
			if i >= 0 {
				s.snap.Rules = slices.Delete(s.snap.Rules, i, i+1)
			}
			break
		}
		if i < 0 {
			s.snap.Rules = append(s.snap.Rules, *c.Rule)
		}
	case routes.OpAddAddr, routes.OpDelAddr:
		if c.Addr == nil {
			return fmt.Errorf("%s: no address given", c.Op)
		}
		a := routes.Address{Device: c.Addr.Device, Prefix: c.Addr.Prefix}
		if !s.hasLink(a.Device) {
			if c.Op == routes.OpDelAddr {
				break
			}
			return fmt.Errorf("%s: device %s: link not found", c, a.Device)
		}
		i := slices.Index(s.snap.Addresses, a)
		if c.Op == routes.OpDelAddr {
			if i >= 0 {
				s.snap.Addresses = slices.Delete(s.snap.Addresses, i, i+1)
			}
			break
		}
		if i < 0 {
			s.snap.Addresses = append(s.snap.Addresses, a)
		}
	case routes.OpSetSysctl:
		if c.Sysctl == nil || !routes.ValidSysctl(c.Sysctl.Name) {
			return fmt.Errorf("%s: no valid switch given", c.Op)
		}
		if s.sysctls == nil {
			s.sysctls = map[string]string{}
		}
		s.sysctls[c.Sysctl.Name] = c.Sysctl.Value
	default:
		return fmt.Errorf("unknown change %q", c.Op)
	}
	s.Applied = append(s.Applied, c)
	return nil
}

// ErrNoRoute is what Lookup returns when the walk finds no route.
var ErrNoRoute = errors.New("network is unreachable")

// Lookup implements routes.System with analysis.Select, the policy walk
// doctor uses, over the current state.
func (s *System) Lookup(q routes.Query) (routes.Route, error) {
	snap, _ := s.Snapshot()
	d := analysis.Select(snap, analysis.Flow{Dst: q.Dst, Src: q.Src, FwMark: q.FwMark, IIF: q.IIF})
	if d.NoRoute {
		return routes.Route{}, ErrNoRoute
	}
	return d.Route, nil
}

var (
	_ routes.System       = (*System)(nil)
	_ routes.SysctlSystem = (*System)(nil)
)
