package routes

// Conversion between golang.org/x/net/route's messages and bsdRouteMsg.

import (
	"fmt"

	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// parseRIB is route.ParseRIB that turns a panic on malformed input into an
// error: the bytes come from the kernel, but one bad message must not take
// the agent down.
func parseRIB(typ route.RIBType, b []byte) (msgs []route.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msgs, err = nil, fmt.Errorf("malformed route messages (%d bytes): %v", len(b), r)
		}
	}()
	msgs, err = route.ParseRIB(typ, b)
	if err != nil {
		return nil, fmt.Errorf("parse route messages (%d bytes): %w", len(b), err)
	}
	return msgs, nil
}

func fromRouteAddr(a route.Addr) bsdAddr {
	switch a := a.(type) {
	case *route.Inet4Addr:
		if a == nil {
			return bsdAddr{}
		}
		return bsdAddr{Family: bsdAFInet, IP: append([]byte(nil), a.IP[:]...)}
	case *route.Inet6Addr:
		if a == nil {
			return bsdAddr{}
		}
		return bsdAddr{Family: bsdAFInet6, IP: append([]byte(nil), a.IP[:]...), Zone: a.ZoneID}
	case *route.LinkAddr:
		if a == nil {
			return bsdAddr{}
		}
		return bsdAddr{Family: bsdAFLink, Index: a.Index, Name: a.Name, LLAddr: append([]byte(nil), a.Addr...)}
	}
	// Absent, or a kind a route message does not use for these roles.
	return bsdAddr{}
}

// toRouteAddr converts a for marshalling; absent is an untyped nil (a
// typed nil pointer would be marshalled). Short masks are padded: the
// kernel reads full socket addresses from requests.
func toRouteAddr(a bsdAddr) route.Addr {
	switch a.Family {
	case bsdAFInet:
		var ip [4]byte
		copy(ip[:], a.IP)
		return &route.Inet4Addr{IP: ip}
	case bsdAFInet6:
		var ip [16]byte
		copy(ip[:], a.IP)
		return &route.Inet6Addr{IP: ip, ZoneID: a.Zone}
	case bsdAFLink:
		return &route.LinkAddr{Index: a.Index, Name: a.Name, Addr: a.LLAddr}
	}
	return nil
}

func addrAt(as []route.Addr, i int) bsdAddr {
	if i < len(as) {
		return fromRouteAddr(as[i])
	}
	return bsdAddr{}
}

func fromRouteMessage(m *route.RouteMessage) bsdRouteMsg {
	// m.Err is not used: x/net/route v0.62.0 reads it at the offset of
	// rtm_use on darwin, so dumps show a use count as an errno. Requests
	// get their errno from the write instead.
	return bsdRouteMsg{
		Type: m.Type, Flags: m.Flags, Index: m.Index, Seq: m.Seq,
		Dst:     addrAt(m.Addrs, unix.RTAX_DST),
		Gateway: addrAt(m.Addrs, unix.RTAX_GATEWAY),
		Netmask: addrAt(m.Addrs, unix.RTAX_NETMASK),
		IFP:     addrAt(m.Addrs, unix.RTAX_IFP),
		IFA:     addrAt(m.Addrs, unix.RTAX_IFA),
	}
}

func toRouteMessage(m bsdRouteMsg, pid int) *route.RouteMessage {
	addrs := make([]route.Addr, unix.RTAX_MAX)
	addrs[unix.RTAX_DST] = toRouteAddr(m.Dst)
	addrs[unix.RTAX_GATEWAY] = toRouteAddr(m.Gateway)
	addrs[unix.RTAX_NETMASK] = toRouteAddr(m.Netmask)
	addrs[unix.RTAX_IFP] = toRouteAddr(m.IFP)
	addrs[unix.RTAX_IFA] = toRouteAddr(m.IFA)
	return &route.RouteMessage{Version: unix.RTM_VERSION, Type: m.Type, Flags: m.Flags, Index: m.Index,
		ID: uintptr(pid), Seq: m.Seq, Addrs: addrs}
}

// fromInterfaceMessages splits NET_RT_IFLIST into interfaces and addresses.
func fromInterfaceMessages(msgs []route.Message) ([]bsdIfMsg, []bsdIfAddrMsg) {
	var ifs []bsdIfMsg
	var addrs []bsdIfAddrMsg
	for _, m := range msgs {
		switch m := m.(type) {
		case *route.InterfaceMessage:
			i := bsdIfMsg{Index: m.Index, Name: m.Name, Flags: m.Flags}
			for _, s := range m.Sys() {
				if im, ok := s.(*route.InterfaceMetrics); ok {
					i.Type, i.MTU = im.Type, im.MTU
				}
			}
			ifs = append(ifs, i)
		case *route.InterfaceAddrMessage:
			addrs = append(addrs, bsdIfAddrMsg{Index: m.Index, Addr: addrAt(m.Addrs, unix.RTAX_IFA), Mask: addrAt(m.Addrs, unix.RTAX_NETMASK)})
		}
	}
	return ifs, addrs
}
