// Package netnstest gives a test its own network namespace with a small LAN
// (lan0 10.1.2.10/24 + fd01:2::10/64, default routes via .1) so it can change
// routes and rules freely; the namespace is deleted when the test ends.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var seq atomic.Int32

// NS is a test namespace.
type NS struct {
	Name   string
	Handle *netlink.Handle
	t      testing.TB
}

// New creates the namespace, or skips the test when not root.
func New(t testing.TB) *NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("cpt-%d-%d", os.Getpid(), seq.Add(1))
	n := &NS{Name: name, t: t}
	exec.Command("ip", "netns", "del", name).Run()
	n.IP("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	n.IPIn("link", "set", "lo", "up")
	n.IPIn("link", "add", "lan0", "type", "veth", "peer", "name", "peer0")
	n.IPIn("link", "set", "lan0", "up")
	n.IPIn("link", "set", "peer0", "up")
	n.IPIn("addr", "add", "10.1.2.10/24", "dev", "lan0")
	n.IPIn("addr", "add", "fd01:2::10/64", "dev", "lan0", "nodad")
	n.IPIn("route", "add", "default", "via", "10.1.2.1", "dev", "lan0")
	n.IPIn("-6", "route", "add", "default", "via", "fd01:2::1", "dev", "lan0")
	// The kernel adds the IPv6 addresses' local routes a moment later (the
	// link-local ones of lan0 and peer0 only once the links are up, later
	// still on a loaded machine); a snapshot taken before they land would
	// see them as a change.
	for i := 0; i < 500; i++ {
		out, _ := exec.Command("ip", "-n", name, "-6", "route", "show", "table", "local").CombinedOutput()
		if strings.Contains(string(out), "fd01:2::10") && strings.Count(string(out), "local fe80::") >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if n.Handle, err = netlink.NewHandleAt(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Handle.Close)
	return n
}

// IP runs `ip args...` and fails the test on error.
func (n *NS) IP(args ...string) string {
	n.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IPIn runs `ip -n <ns> args...`.
func (n *NS) IPIn(args ...string) string {
	n.t.Helper()
	return n.IP(append([]string{"-n", n.Name}, args...)...)
}
