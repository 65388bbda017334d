package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/clearpath-vpn/clearpath/internal/tstest/dnstest"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// Split DNS in the demo: each VPC runs a DNS server for its private zone,
// the LAN's router one for public names, and the laptop has its own
// resolv.conf naming the LAN's server.
var (
	privateName    = map[string]string{"eng": "db.corp.internal", "ops": "db.ops.internal"}
	laptopResolver = []byte("# from the LAN's DHCP server\nnameserver " + lab.HostLANIP4 + "\nsearch lan.example\n")
)

func dnsOptions() []stack.Option {
	return []stack.Option{
		stack.WithNetworkConfig("eng", "    dns: {servers: ["+lab.VPCAIP4+"], domains: [corp.internal]}"),
		stack.WithNetworkConfig("ops", "    dns: {servers: ["+lab.VPCBIP4+"], domains: [ops.internal]}"),
	}
}

func startDNS(ref *lab.Reference) error {
	a := netip.MustParseAddr
	for _, z := range []struct {
		n    *lab.Node
		ip   string
		zone map[string]netip.Addr
	}{
		{ref.VPCA, lab.VPCAIP4, map[string]netip.Addr{"db.corp.internal": a(lab.VPCAIP4)}},
		{ref.VPCB, lab.VPCBIP4, map[string]netip.Addr{"db.ops.internal": a(lab.VPCBIP4)}},
		{ref.Host, lab.HostLANIP4, map[string]netip.Addr{"www.example.com": a("192.0.2.80")}},
	} {
		pc, err := z.n.ListenPacket("udp", net.JoinHostPort(z.ip, "53"))
		if err != nil {
			return err
		}
		ln, err := z.n.Listen("tcp", net.JoinHostPort(z.ip, "53"))
		if err != nil {
			return err
		}
		dnstest.Serve(pc, ln, z.zone) // ends with the lab's namespaces
	}
	_, err := ref.Laptop.SetResolvConf(laptopResolver)
	return err
}

// checkResolvConf compares the laptop's resolv.conf with the one it had.
func checkResolvConf(d *demo) error {
	b, err := os.ReadFile(d.s.Laptop.ResolvConfPath())
	if err != nil {
		return err
	}
	if !bytes.Equal(b, laptopResolver) {
		return fmt.Errorf("the laptop's resolv.conf was not restored:\n%s", b)
	}
	fmt.Println("\n    resolv.conf is byte for byte what it was before `vpn up`.")
	return nil
}

func splitDNSStep(d *demo, network string) error {
	name := privateName[network]
	d.say("Private names through the tunnel: split DNS",
		"The gateway pushed a DNS server and routing domain with the peer config. The agent",
		"runs a stub resolver on 127.0.74.11 and points resolv.conf at it (the old file is",
		"journaled first): "+name+" is asked of the VPC's server through the tunnel,",
		"every other name of the LAN's server as before.")
	d.sh(d.s.Laptop, "cat", "/etc/resolv.conf")
	if _, err := d.sh(d.s.Laptop, "getent", "hosts", name); err != nil {
		return fmt.Errorf("%s does not resolve through the tunnel: %w", name, err)
	}
	if _, err := d.sh(d.s.Laptop, "getent", "hosts", "www.example.com"); err != nil {
		return errors.New("a public name does not resolve while up")
	}
	return nil
}

func dnsAfterDown(d *demo, network string) error {
	d.say("DNS after vpn down",
		"resolv.conf is back, and the private zone is gone with the tunnel:")
	if _, err := d.sh(d.s.Laptop, "getent", "hosts", privateName[network]); err == nil {
		return errors.New(privateName[network] + " still resolves after vpn down")
	}
	return checkResolvConf(d)
}
