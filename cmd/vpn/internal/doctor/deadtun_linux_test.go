package doctor

import (
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
	"github.com/clearpath-vpn/clearpath/routes"
)

// openTun attaches to (or creates) the tun device name inside ns, as a
// VPN process does, and returns the open descriptor: closing it is what
// the kernel sees when that process dies.
func openTun(t *testing.T, ns *netnstest.NS, name string, persist bool) *os.File {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		f.Close()
		t.Fatalf("TUNSETIFF %s: %v", name, e)
	}
	if persist {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.TUNSETPERSIST, 1); e != 0 {
			f.Close()
			t.Fatalf("TUNSETPERSIST %s: %v", name, e)
		}
	}
	return f
}

func findingOf(t *testing.T, e *Env, id string) (found bool, commands []string, evidence string) {
	t.Helper()
	rep, _ := run(t, e, &Options{})
	for _, f := range rep.Findings {
		if f.ID == id {
			var ev []string
			for _, x := range f.Evidence {
				ev = append(ev, x.Text)
			}
			return true, f.Commands, strings.Join(ev, "\n")
		}
	}
	return false, nil, ids(rep)
}

// A VPN sets IFF_PERSIST on its tun, routes IPv4 and IPv6 prefixes into
// it, and dies: the device stays up without carrier, its routes stay
// (linkdown) and swallow the traffic. Doctor names the device with its
// state and routes; --fix dead-tun deletes the device (taking its routes),
// and the next doctor is clean. While the process lives, nothing is
// reported; if a process attaches between the report and the fix, the
// fix refuses.
func TestDoctorDeadPersistentTun(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	f := openTun(t, ns, "tun7", true)
	ns.IPIn("link", "set", "tun7", "up")
	ns.IPIn("route", "add", "10.8.0.0/24", "dev", "tun7")
	ns.IPIn("-6", "route", "add", "fd08::/64", "dev", "tun7")
	if found, _, got := findingOf(t, e, "dead-tun"); found {
		t.Fatalf("a tun its process holds was reported dead: %s", got)
	}
	f.Close() // the process dies
	if r := ns.IPIn("route", "show", "dev", "tun7"); !strings.Contains(r, "linkdown") {
		t.Fatalf("want the kernel to keep the route linkdown, got %q", r)
	}
	if r := ns.IPIn("route", "get", "10.8.0.5"); !strings.Contains(r, "dev tun7") {
		t.Fatalf("the kernel no longer routes into the dead tun (nothing to diagnose): %q", r)
	}
	found, cmds, ev := findingOf(t, e, "dead-tun")
	if !found {
		t.Fatalf("dead persistent tun not reported; findings: %s", ev)
	}
	for _, w := range []string{"tun7: tuntap, up, no carrier, persistent, 0 file descriptors attached", "10.8.0.0/24", "fd08::/64"} {
		if !strings.Contains(ev, w) {
			t.Errorf("evidence lacks %q:\n%s", w, ev)
		}
	}
	if len(cmds) != 1 || cmds[0] != "ip link del tun7" {
		t.Fatalf("fix: want `ip link del tun7`, got %v", cmds)
	}

	// A process takes the device over after the report: the fix refuses.
	sys := routes.NewSystemAt(ns.Handle)
	g := openTun(t, ns, "tun7", false)
	if err := sys.Apply(routes.Change{Op: routes.OpDelLink, Link: &routes.Link{Name: "tun7"}}); err == nil || !strings.Contains(err.Error(), "attached now") {
		t.Fatalf("deleting a tun a process holds: want a refusal, got %v", err)
	}
	if !strings.Contains(ns.IPIn("link"), "tun7") {
		t.Fatal("a held tun was deleted")
	}
	// Even when that process turns the carrier off itself (TUNSETCARRIER),
	// its descriptor in /proc/PID/fdinfo (iff: tun7) stops the deletion.
	var off uint32
	if _, _, en := unix.Syscall(unix.SYS_IOCTL, g.Fd(), unix.TUNSETCARRIER, uintptr(unsafe.Pointer(&off))); en != 0 {
		t.Fatalf("TUNSETCARRIER: %v", en)
	}
	if !strings.Contains(ns.IPIn("link", "show", "tun7"), "NO-CARRIER") {
		t.Fatal("carrier still on after TUNSETCARRIER 0")
	}
	if found, _, ev := findingOf(t, e, "dead-tun"); found {
		t.Errorf("a tun its process holds with the carrier turned off was reported dead:\n%s", ev)
	}
	if err := sys.Apply(routes.Change{Op: routes.OpDelLink, Link: &routes.Link{Name: "tun7"}}); err == nil || !strings.Contains(err.Error(), "fdinfo") {
		t.Fatalf("deleting a tun a process holds without carrier: want a refusal naming the process, got %v", err)
	}
	// Nor does del-link delete anything but a tun.
	if err := sys.Apply(routes.Change{Op: routes.OpDelLink, Link: &routes.Link{Name: "lan0"}}); err == nil || !strings.Contains(ns.IPIn("link"), "lan0") {
		t.Fatalf("del-link of a veth: want a refusal, got %v", err)
	}
	g.Close()

	rep, code := run(t, e, &Options{Fix: "dead-tun"})
	if code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("after --fix dead-tun: exit %d, findings %s", code, ids(rep))
	}
	if strings.Contains(ns.IPIn("link"), "tun7") {
		t.Fatal("the dead tun survived --fix")
	}
	if r := ns.IPIn("route", "get", "10.8.0.5"); !strings.Contains(r, "via 10.1.2.1 dev lan0") {
		t.Fatalf("traffic for 10.8.0.0/24 should take the default route again: %q", r)
	}
}

// `ip tuntap add` makes a persistent tun no process ever held; brought up
// with routes, IPv4 and IPv6, it is the same dead end.
func TestDoctorTuntapAddNoProcess(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	ns.IPIn("tuntap", "add", "dev", "tap3", "mode", "tap")
	ns.IPIn("link", "set", "tap3", "up")
	ns.IPIn("route", "add", "172.16.0.0/12", "dev", "tap3")
	ns.IPIn("-6", "route", "add", "fd16::/48", "dev", "tap3")
	// resolv.conf still names the dead VPN's resolver.
	e.DNS = func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("172.16.0.53")} }
	found, cmds, ev := findingOf(t, e, "dead-tun")
	if !found || len(cmds) != 1 || cmds[0] != "ip link del tap3" || !strings.Contains(ev, "172.16.0.0/12") || !strings.Contains(ev, "fd16::/48") ||
		!strings.Contains(ev, "DNS server 172.16.0.53") {
		t.Fatalf("want dead-tun for tap3 with both routes and `ip link del tap3`, got %v %v\n%s", found, cmds, ev)
	}
	if rep, code := run(t, e, &Options{Fix: "dead-tun"}); code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("after --fix: exit %d %s", code, ids(rep))
	}
}
