package analysis

import (
	"fmt"
	"strings"

	"github.com/clearpath-vpn/clearpath/routes"
)

// deadTunnels finds routes on a tunnel device that still exists and is up
// but has no process behind it: a persistent tun (`ip tuntap add`,
// OpenVPN's persist-tun, a userspace VPN killed after setting IFF_PERSIST)
// with no file descriptor attached, or a tunnel-like device without
// carrier. The kernel keeps such routes (marked linkdown) and still uses
// the IPv4 ones, so their traffic goes nowhere. The deadDeviceRoutes check
// covers devices that are gone or down; this one covers devices that look
// alive. macOS has no equivalent: a utun dies with the process holding it.
func (c *checker) deadTunnels() {
	for _, l := range c.snap.Links {
		if !l.Up {
			continue // down: dead-device-route reports its routes
		}
		// A tun/tap is dead when no process holds it (a live process
		// that turned its carrier off manages its routes itself); any
		// other tunnel-like device when it has no carrier.
		dead := l.Tun != nil && l.Tun.Attached == 0 || l.Tun == nil && l.NoCarrier && c.tunnelLike(l.Name)
		if !dead {
			continue
		}
		var rs []routes.Route
		for _, r := range c.snap.Routes {
			if r.Device != l.Name || r.Table == 255 || r.Type == routes.TypeLocal || r.Type == routes.TypeBroadcast || r.Type == routes.TypeMulticast {
				continue
			}
			if r.Protocol == routes.Protocol && c.in.Agent == nil {
				continue // reported as leftover-owned
			}
			if r.Dst.Addr().IsLinkLocalUnicast() && r.Protocol == 2 {
				continue // the kernel's fe80::/64: goes with the device, routes nothing
			}
			rs = append(rs, r)
		}
		if len(rs) == 0 {
			continue
		}
		sev := Warning
		for _, r := range rs {
			if r.Dst.Bits() <= 1 {
				sev = Error // a default or half-default into nothing
			}
		}
		// A resolver the dead VPN pushed, still in resolv.conf and routed
		// into the device: every name lookup times out.
		var dnsEv []Evidence
		for _, s := range c.in.DNS {
			if d := Select(c.snap, Flow{Dst: s}); !d.Refused && d.Route.Device == l.Name {
				dnsEv = append(dnsEv, Evidence{Kind: "lookup", Text: fmt.Sprintf("DNS server %s: route get %s -> %s", s, s, display(d.Route))})
				sev = Error
			}
		}
		kind := "tunnel device"
		if l.Tun != nil {
			kind = "tun/tap device"
		}
		state := []string{"up"}
		if l.NoCarrier {
			state = append(state, "no carrier")
		}
		how := "its process is gone"
		if l.Tun != nil {
			if l.Tun.Persistent {
				state = append(state, "persistent")
			}
			state = append(state, fmt.Sprintf("%d file descriptors attached", l.Tun.Attached))
			if l.Tun.Attached == 0 {
				how = "no process has it open"
			}
		}
		f := Finding{ID: "dead-tun", Severity: sev, Owner: ownerOfDevice(l.Name),
			Title: fmt.Sprintf("%d routes point at %s, a %s that exists but %s", len(rs), l.Name, kind, how),
			Evidence: []Evidence{{Kind: "link", Text: fmt.Sprintf("%s: %s, %s (kernel link state: carrier, IFLA_TUN_*)",
				l.Name, orType(l.Type), strings.Join(state, ", "))}},
		}
		for _, r := range rs {
			f.Evidence = append(f.Evidence, routeEv(r))
		}
		f.Evidence = append(f.Evidence, dnsEv...)
		if len(dnsEv) > 0 {
			f.Title += "; DNS goes there too"
		}
		switch {
		case c.in.Agent != nil && l.Name == c.in.Agent.Interface:
			f.Owner = "clearpath"
			f.Explanation = "ClearPath's own tunnel device has lost its WireGuard process: the tunnel carries nothing. Reconnect (`vpn down && vpn up`)."
		case l.Tun != nil && l.Tun.Persistent && l.Tun.Attached == 0:
			f.Explanation = fmt.Sprintf("%s is a persistent tun/tap device (made with `ip tuntap add`, OpenVPN's persist-tun, or a VPN that set IFF_PERSIST) "+
				"whose process is gone: nothing reads the packets routed to it, so traffic to these destinations is dropped. "+
				"The kernel marks the routes linkdown but still uses the IPv4 ones. No process holds the device, so deleting it is safe "+
				"and takes its routes with it (doctor checks again just before deleting and refuses if a process has attached meanwhile).", l.Name)
			f.Fix, f.Fixable = []routes.Change{{Op: routes.OpDelLink, Link: &routes.Link{Name: l.Name, Type: l.Type}}}, true
		default:
			f.Explanation = fmt.Sprintf("%s is up but has no carrier: the program behind it stopped passing packets (a tun whose process "+
				"let go, a tunnel whose peer is gone), so traffic to these destinations is dropped. Removing the routes lets the "+
				"normal routes take over again; the device itself is left alone.", l.Name)
			for _, r := range rs {
				f.Fix = append(f.Fix, delRoute(r))
			}
			f.Fixable = true
		}
		c.add(f)
	}
}

func orType(t string) string {
	if t == "" {
		return "link"
	}
	return t
}
