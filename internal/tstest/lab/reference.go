package lab

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Addresses of the reference topology (docs/ARCHITECTURE.md, "Lab topology").
const (
	LAN4  = "10.1.2.0/24"
	LAN6  = "fd01:2::/64"
	Pub4  = "198.51.100.0/24"
	Pub6  = "2001:db8:100::/64"
	IDPN4 = "192.0.2.0/24"
	VPCA4 = "10.10.0.0/16"
	VPCA6 = "fd10:10::/64"
	VPCB4 = "10.20.0.0/16"
	VPCB6 = "fd10:20::/64"

	LaptopIP4     = "10.1.2.10"
	LaptopIP6     = "fd01:2::10"
	HostLANIP4    = "10.1.2.1"
	HostLANIP6    = "fd01:2::1"
	HostPublicIP4 = "198.51.100.2"
	HostPublicIP6 = "2001:db8:100::2"
	GWPublicIP4   = "198.51.100.1"
	GWPublicIP6   = "2001:db8:100::1"
	GWIDPIP4      = "192.0.2.1"
	IDPIP4        = "192.0.2.10"
	GWVPCAIP4     = "10.10.0.1"
	GWVPCAIP6     = "fd10:10::1"
	VPCAIP4       = "10.10.0.10"
	VPCAIP6       = "fd10:10::10"
	GWVPCBIP4     = "10.20.0.1"
	GWVPCBIP6     = "fd10:20::1"
	VPCBIP4       = "10.20.0.10"
	VPCBIP6       = "fd10:20::10"

	// Gateway networks configured in the lab (docs/ARCHITECTURE.md).
	EngPool4 = "100.64.0.0/24"
	EngPool6 = "fd00:64::/64"
	OpsPool4 = "100.65.0.0/24"
	OpsPool6 = "fd00:65::/64"
	EngPort  = 51820
	OpsPort  = 51821
)

// Reference is the lab every end-to-end test and the demo use:
//
//	laptop --LAN-- host --public-- gw --+-- idp   (Dex)
//	                                    +-- vpc-a (engineering may reach it)
//	                                    +-- vpc-b (ops may reach it)
//
// host is the LAN's router and forwards; gw does not forward until the
// gateway turns forwarding on, as a fresh server would. host knows only
// public prefixes (the LAN, the public segment and idp's 192.0.2.0/24 via
// gw), as the internet does: vpc-a and vpc-b are reachable from the laptop
// only through the tunnel. vpc-a and vpc-b default-route to gw, so replies
// to the client pools come back to it, as a cloud route table does.
type Reference struct {
	*Lab
	Laptop, Host, GW, VPCA, VPCB, IDP *Node
	// Interface names worth knowing: laptop's LAN interface and gw's
	// public one.
	LaptopLAN, GWPublic string
}

// NewReference builds the reference topology in a new lab. On error the
// lab is closed.
func NewReference(opts Options) (*Reference, error) {
	l, err := New(opts)
	if err != nil {
		return nil, err
	}
	r, err := BuildReference(l)
	if err != nil {
		l.Close()
		return nil, err
	}
	return r, nil
}

// BuildReference adds the reference nodes and links to an empty lab.
func BuildReference(l *Lab) (*Reference, error) {
	r := &Reference{Lab: l}
	for _, n := range []struct {
		p    **Node
		name string
	}{{&r.Laptop, "laptop"}, {&r.Host, "host"}, {&r.GW, "gw"}, {&r.VPCA, "vpc-a"}, {&r.VPCB, "vpc-b"}, {&r.IDP, "idp"}} {
		node, err := l.AddNode(n.name)
		if err != nil {
			return nil, err
		}
		*n.p = node
	}
	lan, err := l.Connect(
		End{Node: r.Laptop, Addrs: []string{LaptopIP4 + "/24", LaptopIP6 + "/64"}},
		End{Node: r.Host, Addrs: []string{HostLANIP4 + "/24", HostLANIP6 + "/64"}})
	if err != nil {
		return nil, err
	}
	r.LaptopLAN = lan.A.Name
	pub, err := l.Connect(
		End{Node: r.Host, Addrs: []string{HostPublicIP4 + "/24", HostPublicIP6 + "/64"}},
		End{Node: r.GW, Addrs: []string{GWPublicIP4 + "/24", GWPublicIP6 + "/64"}})
	if err != nil {
		return nil, err
	}
	r.GWPublic = pub.B.Name
	if err := narrowHop(l, pub); err != nil {
		return nil, err
	}
	if _, err := l.Connect(
		End{Node: r.GW, Addrs: []string{GWIDPIP4 + "/24"}},
		End{Node: r.IDP, Addrs: []string{IDPIP4 + "/24"}}); err != nil {
		return nil, err
	}
	if _, err := l.Connect(
		End{Node: r.GW, Addrs: []string{GWVPCAIP4 + "/16", GWVPCAIP6 + "/64"}},
		End{Node: r.VPCA, Addrs: []string{VPCAIP4 + "/16", VPCAIP6 + "/64"}}); err != nil {
		return nil, err
	}
	if _, err := l.Connect(
		End{Node: r.GW, Addrs: []string{GWVPCBIP4 + "/16", GWVPCBIP6 + "/64"}},
		End{Node: r.VPCB, Addrs: []string{VPCBIP4 + "/16", VPCBIP6 + "/64"}}); err != nil {
		return nil, err
	}
	routes := []struct {
		n        *Node
		dst, via string
	}{
		{r.Laptop, "default", HostLANIP4},
		{r.Laptop, "default", HostLANIP6},
		{r.Host, IDPN4, GWPublicIP4},
		{r.GW, LAN4, HostPublicIP4},
		{r.GW, LAN6, HostPublicIP6},
		{r.IDP, "default", GWIDPIP4},
		{r.VPCA, "default", GWVPCAIP4},
		{r.VPCA, "default", GWVPCAIP6},
		{r.VPCB, "default", GWVPCBIP4},
		{r.VPCB, "default", GWVPCBIP6},
	}
	for _, rt := range routes {
		if err := rt.n.Route(rt.dst, rt.via); err != nil {
			return nil, err
		}
	}
	if err := r.Host.Forwarding(true); err != nil {
		return nil, fmt.Errorf("lab: host forwarding: %w", err)
	}
	// A new namespace inherits the machine's IPv4 ip_forward (kernel
	// default net.core.devconf_inherit_init_net=0): gw starts with it off
	// wherever the tests run, as a fresh server would.
	if err := r.GW.Forwarding(false); err != nil {
		return nil, fmt.Errorf("lab: gw forwarding: %w", err)
	}
	return r, nil
}

// narrowHop applies Options.NarrowHop and PMTUBlackHole to the public hop.
func narrowHop(l *Lab, pub *Link) error {
	if l.opts.NarrowHop == 0 {
		return nil
	}
	if l.opts.NarrowHop < 1280 || l.opts.NarrowHop > 1500 {
		return fmt.Errorf("lab: NarrowHop %d: want 1280-1500 (IPv6 needs 1280)", l.opts.NarrowHop)
	}
	for _, e := range []LinkEnd{pub.A, pub.B} {
		if err := e.Node.IP("link", "set", e.Name, "mtu", strconv.Itoa(l.opts.NarrowHop)); err != nil {
			return err
		}
	}
	if !l.opts.PMTUBlackHole {
		return nil
	}
	host := pub.A.Node
	cmd := host.Command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet cplabpmtu {
	chain out {
		type filter hook output priority 0; policy accept;
		icmp type destination-unreachable icmp code frag-needed drop
		icmpv6 type packet-too-big drop
	}
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: PMTU black hole on %s: %v\n%s", host.Name, err, out)
	}
	return nil
}
