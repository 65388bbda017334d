// Package routes is the client's route hygiene engine: a platform-neutral
// model of routes, rules, links and addresses, a small per-platform System
// that reads and changes them, a journal that records every change before it
// is made, and restore/sweep logic that puts the table back exactly.
package routes

import (
	"net/netip"
)

// Ownership markers of the client. Everything it adds carries them, so ownership lives in
// the kernel rather than in our memory (see docs/ARCHITECTURE.md).
const (
	Protocol = 197    // route and rule protocol of every item we add (Linux)
	Table    = 7411   // our routing table (Linux)
	FwMark   = 0x7411 // mark on our WireGuard UDP socket: endpoint skips the tunnel

	PrioritySourceRules = 4100 // from <local address> lookup main
	PriorityTunnelRule  = 4200 // not fwmark FwMark lookup Table
)

// Family is an address family.
type Family int

const (
	FamilyAll Family = 0
	FamilyV4  Family = 4
	FamilyV6  Family = 6
)

// RouteType mirrors the kernel route types we care about.
type RouteType string

const (
	TypeUnicast     RouteType = "unicast"
	TypeThrow       RouteType = "throw"
	TypeBlackhole   RouteType = "blackhole"
	TypeUnreachable RouteType = "unreachable"
	TypeProhibit    RouteType = "prohibit"
	TypeLocal       RouteType = "local"
	TypeBroadcast   RouteType = "broadcast"
	TypeMulticast   RouteType = "multicast"
	TypeAnycast     RouteType = "anycast"
	TypeOther       RouteType = "other"
)

// Route is one routing table entry.
type Route struct {
	Family   Family       `json:"family"`
	Table    int          `json:"table"`
	Type     RouteType    `json:"type"`
	Dst      netip.Prefix `json:"dst"`              // 0.0.0.0/0 or ::/0 for default
	Gateway  netip.Addr   `json:"gateway,omitzero"` // invalid when on-link
	Device   string       `json:"device,omitempty"` // interface name
	Src      netip.Addr   `json:"src,omitzero"`     // preferred source
	Metric   int          `json:"metric,omitempty"` // priority
	Protocol int          `json:"protocol"`         // 197 = ours
	Scope    int          `json:"scope,omitempty"`  // 0 universe, 253 link, 254 host
	Flags    []string     `json:"flags,omitempty"`  // platform flags (macOS RTF_*), informational
}

// Rule is one policy routing rule (Linux `ip rule`).
type Rule struct {
	Family   Family       `json:"family"`
	Priority int          `json:"priority"`
	From     netip.Prefix `json:"from,omitzero"`
	To       netip.Prefix `json:"to,omitzero"`
	FwMark   uint32       `json:"fwmark,omitempty"`
	FwMask   uint32       `json:"fwmask,omitempty"`
	Invert   bool         `json:"invert,omitempty"` // "not"
	IIF      string       `json:"iif,omitempty"`
	OIF      string       `json:"oif,omitempty"`
	Table    int          `json:"table"`
	// SuppressPrefixLen is -1 when unset (the kernel's default).
	SuppressPrefixLen int    `json:"suppress_prefixlength"`
	Protocol          int    `json:"protocol"`
	Action            string `json:"action"` // "lookup", "blackhole", "unreachable", "prohibit", "goto", "nop"
	// Goto is the priority a "goto" rule jumps to.
	Goto int `json:"goto,omitempty"`
}

// Link is a network interface.
type Link struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Type  string `json:"type,omitempty"` // "veth", "tun", "loopback", ...
	Up    bool   `json:"up"`
	MTU   int    `json:"mtu,omitempty"`
	// NoCarrier: administratively up but without carrier (no
	// IFF_LOWER_UP): a tun no process holds, a veth whose peer is down.
	// Its routes are "linkdown", and the kernel still uses the IPv4 ones.
	NoCarrier bool `json:"no_carrier,omitempty"`
	// Tun is the kernel's account of a tun/tap device (Linux only).
	Tun *TunInfo `json:"tun,omitempty"`
}

// TunInfo is what the kernel says about a tun/tap device in its link
// message (IFLA_TUN_*; kernel >= 4.15).
type TunInfo struct {
	// Persistent devices (IFF_PERSIST: `ip tuntap add`, OpenVPN's
	// persist-tun) outlive the process that made them.
	Persistent bool `json:"persistent"`
	// Attached counts the descriptors attached to the device: for a
	// multi-queue one the kernel's queue counts, else 1 while the tun
	// driver keeps the carrier on (it does while a descriptor is
	// attached). 0 means no process holds it: packets routed to it are
	// dropped.
	Attached int `json:"attached"`
}

// Address is an address assigned to a link.
type Address struct {
	Device string       `json:"device"`
	Prefix netip.Prefix `json:"prefix"` // address with its prefix length
	// NoDAD (IPv6, when adding): usable at once, no duplicate address
	// detection (a point-to-multipoint tunnel).
	NoDAD bool `json:"nodad,omitempty"`
	// NoPrefixRoute (when adding): the kernel adds no route of its own for
	// the address, so every route of a tunnel is one the engine journaled.
	NoPrefixRoute bool `json:"noprefixroute,omitempty"`
}

// Snapshot is the whole routing state at one moment.
type Snapshot struct {
	OS        string    `json:"os"` // "linux", "darwin"
	Routes    []Route   `json:"routes"`
	Rules     []Rule    `json:"rules"`
	Links     []Link    `json:"links"`
	Addresses []Address `json:"addresses"`
}

// Op is the kind of a change.
type Op string

const (
	OpAddRoute Op = "add-route"
	OpDelRoute Op = "del-route"
	OpAddRule  Op = "add-rule"
	OpDelRule  Op = "del-rule"
	// OpDelLink deletes a persistent tun/tap device no process holds
	// (doctor's fix of a dead tun, which takes its routes with it). The
	// engine never plans one and the journal refuses it.
	OpDelLink Op = "del-link"
	OpAddAddr Op = "add-addr"
	OpDelAddr Op = "del-addr"
	// OpSetSysctl writes Sysctl.Value; its inverse writes Sysctl.Old back.
	OpSetSysctl Op = "set-sysctl"
)

// Change is one change to the routing state; exactly one of Route, Rule,
// Link, Addr or Sysctl is set.
type Change struct {
	Op     Op       `json:"op"`
	Route  *Route   `json:"route,omitempty"`
	Rule   *Rule    `json:"rule,omitempty"`
	Link   *Link    `json:"link,omitempty"`
	Addr   *Address `json:"addr,omitempty"`
	Sysctl *Sysctl  `json:"sysctl,omitempty"`
}

// Sysctl is one kernel switch under /proc/sys/net, named by its path below
// /proc/sys ("net/ipv4/ip_forward"). Old is the value read before the
// write, journaled with the intent so that End, and Recover after a
// kill -9, put it back.
type Sysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Old   string `json:"old"`
}

// Query asks which route the kernel would really pick (`ip route get`).
type Query struct {
	Dst    netip.Addr
	Src    netip.Addr // optional
	FwMark uint32     // optional
	IIF    string     // optional: as if received on this interface
	// FIBMatch asks for the table entry that matched (`ip route get
	// fibmatch`: its prefix, type and table) rather than the resolved
	// route to Dst (Linux only).
	FIBMatch bool
}

// System is the per-platform backend: one small interface, implemented in
// system_linux.go (netlink) and system_darwin.go (route socket).
type System interface {
	// Snapshot reads every route (all tables, both families), rule, link and address.
	Snapshot() (*Snapshot, error)
	// Apply makes one change. Deleting selects exactly (dst, gateway,
	// device, table, protocol, type), never by destination alone. Adding
	// something that already exists identically, or deleting something
	// already gone, is not an error (replays must be idempotent).
	Apply(c Change) error
	// Lookup returns the route the kernel would use for q.
	Lookup(q Query) (Route, error)
}

// SysctlSystem is implemented by Systems that can read and write the
// kernel switches of their network namespace (Linux: /proc/sys/net).
type SysctlSystem interface {
	ReadSysctl(name string) (string, error)
}

// SameRule reports whether a and b select the same traffic the same way.
func SameRule(a, b Rule) bool {
	a, b = normRule(a), normRule(b)
	return a.Family == b.Family && a.Priority == b.Priority && a.From == b.From && a.To == b.To &&
		a.FwMark == b.FwMark && a.FwMask == b.FwMask && a.Invert == b.Invert && a.IIF == b.IIF && a.OIF == b.OIF &&
		a.Table == b.Table && a.SuppressPrefixLen == b.SuppressPrefixLen && a.Protocol == b.Protocol && a.Action == b.Action &&
		a.Goto == b.Goto
}
