// Package tunnellab builds the network the eBPF filter tests run in: a
// client and a gateway joined by real wireguard-go devices, and a VPC
// behind the gateway, in namespaces of internal/tstest/lab. Test binaries that use
// it must call RunHelperIfAsked first thing in TestMain.
package tunnellab

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/wgdev"
)

// The tunnel lab: a client and a gateway joined by real wireguard-go
// devices (the gateway's is the group interface the filter runs on), and a
// VPC behind the gateway with one address the user may reach and one it
// may not, on IPv4 and IPv6. No NAT: the VPC routes the client pool back.
//
//	client (cl: 10.100.0.2, fd00:100::2) ==WireGuard over 198.51.100.0/24==
//	gw (wg: 10.100.0.1, fd00:100::1; forwarding) -- vpc (10.10.1.1 allowed,
//	10.10.2.1 denied; fd10::11 allowed, fd10::22 denied)
//
// Addresses of the lab.
const (
	ClientAddr4  = "10.100.0.2"
	ClientAddr6  = "fd00:100::2"
	SpoofAddr4   = "10.100.0.3" // inside the WireGuard peer's allowed IPs, never registered
	AllowedDst4  = "10.10.1.1"
	DeniedDst4   = "10.10.2.1"
	AllowedDst6  = "fd10::11"
	DeniedDst6   = "fd10::22"
	GWListenPort = 51820
)

// Lab is the running tunnel lab.
type Lab struct {
	*lab.Lab
	Client, GW, VPC *lab.Node
	// GWIface is the gateway's WireGuard (TUN) interface, ClientIface the
	// client's.
	GWIface, ClientIface string
	// GWWireGuard is the gateway's wireguard-go process: the kernel's
	// receive path, the filter included, runs on its threads.
	GWWireGuard *lab.Proc
}

// New builds the lab for a test; it is torn down when the test ends.
func New(t testing.TB) *Lab {
	t.Helper()
	l := lab.NewT(t, lab.Options{})
	tl := &Lab{Lab: l, GWIface: l.Prefix + "wg", ClientIface: l.Prefix + "cl"}
	var err error
	for _, n := range []struct {
		name string
		dst  **lab.Node
	}{{"client", &tl.Client}, {"gw", &tl.GW}, {"vpc", &tl.VPC}} {
		if *n.dst, err = l.AddNode(n.name); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = l.Connect(lab.End{Node: tl.Client, Addrs: []string{"198.51.100.2/24"}}, lab.End{Node: tl.GW, Addrs: []string{"198.51.100.1/24"}})
	must(err)
	_, err = l.Connect(lab.End{Node: tl.GW, Addrs: []string{"10.10.0.1/16", "fd10::1/64"}},
		lab.End{Node: tl.VPC, Addrs: []string{"10.10.1.1/16", "10.10.2.1/16", "fd10::11/64", "fd10::22/64"}})
	must(err)
	must(tl.GW.Forwarding(true))
	must(tl.VPC.Route("10.100.0.0/24", "10.10.0.1"))
	must(tl.VPC.Route("fd00:100::/64", "fd10::1"))

	gwKey, err := wgtypes.GeneratePrivateKey()
	must(err)
	clKey, err := wgtypes.GeneratePrivateKey()
	must(err)
	port := GWListenPort
	// The gateway accepts a /28 and a /124 from the client, wider than the
	// addresses the filter knows, so a spoofed source gets through
	// WireGuard's cryptokey routing and only the filter can stop it.
	tl.GWWireGuard = startWG(t, tl.GW, tl.GWIface, wgtypes.Config{PrivateKey: &gwKey, ListenPort: &port, Peers: []wgtypes.PeerConfig{{
		PublicKey: clKey.PublicKey(), AllowedIPs: ipNets("10.100.0.0/28", "fd00:100::/124"),
	}}}, []string{"10.100.0.1/24", "fd00:100::1/64"}, nil)
	startWG(t, tl.Client, tl.ClientIface, wgtypes.Config{PrivateKey: &clKey, Peers: []wgtypes.PeerConfig{{
		PublicKey: gwKey.PublicKey(), Endpoint: &net.UDPAddr{IP: net.ParseIP("198.51.100.1"), Port: GWListenPort},
		AllowedIPs: ipNets("10.10.0.0/16", "fd10::/64", "10.100.0.1/32"),
	}}}, []string{ClientAddr4 + "/32", SpoofAddr4 + "/32", ClientAddr6 + "/128"}, []string{"10.10.0.0/16", "fd10::/64", "10.100.0.1/32"})
	// First packet through: completes the handshake before any test counts.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tl.Client.Ping(ctx, AllowedDst4); err != nil {
		t.Fatalf("tunnel does not carry traffic before any filter: %v", err)
	}
	return tl
}

func ipNets(cidrs ...string) []net.IPNet {
	var out []net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			panic(err)
		}
		out = append(out, *n)
	}
	return out
}

// wgHelperEnv makes the test binary run a wireguard-go device (see
// TestMain) instead of tests.
const wgHelperEnv = "CLEARPATH_BPF_TEST_WG"

// RunHelperIfAsked turns the test binary into a wireguard-go helper when
// the lab started it as one (and then never returns). Call it first in
// TestMain.
func RunHelperIfAsked() {
	if name := os.Getenv(wgHelperEnv); name != "" {
		runWireGuard(name)
	}
}

// runWireGuard is the helper process: a wireguard-go device called name,
// until SIGTERM. It runs in its node's namespace as a whole process, as the
// gateway and the client agent do: wireguard-go rebinds its UDP socket from
// its own goroutines when the link goes up, so an in-process device in a
// test would end up binding in the machine's namespace.
func runWireGuard(name string) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	dev, err := wgdev.Create(name, 1420, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if err := dev.Up(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "wireguard-go running on", name)
	<-sig
	dev.Close()
	os.Exit(0)
}

// startWG runs a wireguard-go device called name in node (a helper
// process), configures it through wgctrl over its UAPI socket like the
// gateway does, then sets its addresses, link and routes.
func startWG(t testing.TB, node *lab.Node, name string, cfg wgtypes.Config, addrs, routes []string) *lab.Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := node.StartEnv("wireguard-go-"+name, []string{wgHelperEnv + "=" + name}, exe, "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(3 * time.Second) })
	for deadline := time.Now().Add(10 * time.Second); !wgdev.InUse(name); {
		if done, err := p.Exited(); done || time.Now().After(deadline) {
			t.Fatalf("wireguard-go %s in %s did not start (exited %v: %v):\n%s", name, node.Name, done, err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer wg.Close()
	if err := wg.ConfigureDevice(name, cfg); err != nil {
		t.Fatalf("configure %s: %v", name, err)
	}
	for _, a := range addrs {
		args := []string{"addr", "add", a, "dev", name}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		if err := node.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := node.IP("link", "set", name, "up"); err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		fam := "-4"
		if strings.Contains(r, ":") {
			fam = "-6"
		}
		if err := node.IP(fam, "route", "add", r, "dev", name); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Ping runs the ping binary in the client: count echo requests with size
// bytes of payload, from src ("" for the default). It returns ping's
// output and whether every request was answered.
func (tl *Lab) Ping(t testing.TB, src, dst string, count, size int) (string, bool) {
	t.Helper()
	args := []string{"ping", "-n", "-q", "-c", fmt.Sprint(count), "-s", fmt.Sprint(size), "-i", "0.2", "-W", "1"}
	if src != "" {
		args = append(args, "-I", src)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := tl.Client.Exec(ctx, append(args, dst)...)
	return out, err == nil && strings.Contains(out, fmt.Sprintf("%d received", count))
}

// CPUTime returns the CPU time (user and system) p has used so far, at the
// kernel's clock tick resolution (10 ms).
func CPUTime(p *lab.Proc) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", p.Pid(), len(f))
	}
	var utime, stime int64
	if _, err := fmt.Sscan(f[11], &utime); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &stime); err != nil {
		return 0, err
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}
