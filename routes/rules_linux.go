package routes

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NewSystemIn returns the System of network namespace ns (the caller keeps
// ns open while the System is in use).
func NewSystemIn(ns netns.NsHandle) (System, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink in namespace: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open rule socket in namespace: %w", err)
	}
	return &linuxSystem{h: h, rules: &nl.SocketHandle{Socket: s}}, nil
}

// ruleActions names the fib rule actions (frh->action).
var ruleActions = map[uint8]string{
	unix.FR_ACT_TO_TBL: "lookup", unix.FR_ACT_GOTO: "goto", unix.FR_ACT_NOP: "nop",
	unix.FR_ACT_BLACKHOLE: "blackhole", unix.FR_ACT_UNREACHABLE: "unreachable", unix.FR_ACT_PROHIBIT: "prohibit",
}

// dumpRules reads the rules of family fam over sock. It parses the dump
// itself because netlink v1.3.1's RuleList drops the rule's action
// (frh->action): blackhole, unreachable, prohibit and nop rules would all
// read as "lookup 0".
func dumpRules(sock *nl.SocketHandle, fam int) ([]Rule, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETRULE, unix.NLM_F_DUMP|unix.NLM_F_REQUEST)
	req.AddData(nl.NewIfInfomsg(fam))
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sock}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWRULE)
	if err != nil {
		return nil, err
	}
	var out []Rule
	for _, m := range msgs {
		if len(m) < unix.SizeofRtMsg {
			return nil, fmt.Errorf("short rule message (%d bytes)", len(m))
		}
		hdr := nl.DeserializeRtMsg(m)
		if int(hdr.Family) != fam {
			continue // multicast families
		}
		attrs, err := nl.ParseRouteAttr(m[hdr.Len():])
		if err != nil {
			return nil, fmt.Errorf("parse rule: %w", err)
		}
		r := Rule{Family: famOf(fam), Table: int(hdr.Table), Invert: hdr.Flags&netlink.FibRuleInvert != 0, SuppressPrefixLen: -1, Action: ruleActions[hdr.Type]}
		if r.Action == "" {
			r.Action = fmt.Sprintf("action-%d", hdr.Type)
		}
		u32 := func(b []byte) uint32 {
			if len(b) < 4 {
				return 0
			}
			return binary.NativeEndian.Uint32(b)
		}
		prefix := func(b []byte, bits uint8) netip.Prefix {
			a, ok := netip.AddrFromSlice(b)
			if !ok {
				return netip.Prefix{}
			}
			return netip.PrefixFrom(a.Unmap(), int(bits))
		}
		for _, a := range attrs {
			v := a.Value
			switch a.Attr.Type {
			case nl.FRA_TABLE:
				r.Table = int(u32(v))
			case nl.FRA_SRC:
				r.From = prefix(v, hdr.Src_len)
			case nl.FRA_DST:
				r.To = prefix(v, hdr.Dst_len)
			case nl.FRA_FWMARK:
				r.FwMark = u32(v)
			case nl.FRA_FWMASK:
				r.FwMask = u32(v)
			case nl.FRA_IIFNAME:
				r.IIF = cString(v)
			case nl.FRA_OIFNAME:
				r.OIF = cString(v)
			case nl.FRA_SUPPRESS_PREFIXLEN:
				if x := u32(v); x != 0xffffffff {
					r.SuppressPrefixLen = int(x)
				}
			case nl.FRA_GOTO:
				r.Goto = int(u32(v))
			case nl.FRA_PRIORITY:
				r.Priority = int(u32(v))
			case nl.FRA_PROTOCOL:
				if len(v) > 0 {
					r.Protocol = int(v[0])
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Close releases the System's netlink sockets (a System from NewSystemAt
// leaves the caller's handle open).
func (s *linuxSystem) Close() error {
	if s.rules != nil {
		s.rules.Socket.Close()
		s.h.Close()
	}
	return nil
}
