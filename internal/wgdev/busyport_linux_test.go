package wgdev_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/wgdev"
)

// The busy-port tests run in the test process's private namespace (TestMain)
// as a whole, as the gateway runs in its own: the TUN, the port held busy and
// every socket wireguard-go opens from any of its goroutines are in it.
func inPrivateNetns(t *testing.T) {
	t.Helper()
	lab.SkipUnlessRoot(t)
	if !privateNetns() {
		t.Skip("needs the private network namespace TestMain makes")
	}
}

func privateNetns() bool { return os.Geteuid() == 0 && os.Getenv(privateNetnsEnv) != "" }

// boundPort is the UDP port the device listens on, 0 for none (the UAPI
// get lists listen_port only while a socket is open or configured).
func boundPort(t *testing.T, d *wgdev.Device) string {
	t.Helper()
	cur, err := d.Dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(cur, "\n") {
		if v, ok := strings.CutPrefix(l, "listen_port="); ok {
			return v
		}
	}
	return "0"
}

// eventsSettle is long enough for the TUN's link events to reach
// wireguard-go: its status probe runs at creation and then once a second.
const eventsSettle = 1500 * time.Millisecond

// A new device stays down until Up: on this kernel the TUN reports its link
// "up" at creation while it is down (a zero-length write on a down TUN with
// a virtio header fails with EINVAL, which wireguard-go's probe reads as
// up), and wireguard-go answered it by bringing the device up and binding
// a random UDP port before it was configured.
func TestDeviceStaysDownUntilUp(t *testing.T) {
	inPrivateNetns(t)
	for _, limit := range []int{wgdev.DefaultInflight, 0} {
		t.Run(fmt.Sprintf("inflight-%d", limit), func(t *testing.T) {
			d, err := wgdev.CreateWithInflight(fmt.Sprintf("cpdown%d", limit), 1420, slog.New(slog.DiscardHandler), limit)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			time.Sleep(eventsSettle)
			if p := boundPort(t, d); p != "0" {
				t.Fatalf("a device nobody brought up listens on UDP port %s", p)
			}
		})
	}
}

// A start whose listen port is taken fails, and the device serves on no
// port: the gateway's all-or-nothing start relies on it (e2e
// TestBadConfigAndNoHalfStart). Before, a link event (the spurious one at
// creation, or the link set up) made wireguard-go try the busy port on its
// own; the failed bind reset the configured port to 0, so the Up that
// followed bound a random port, succeeded, and the network came up serving
// where no client would look.
func TestBusyPortFailsUp(t *testing.T) {
	inPrivateNetns(t)
	busy, err := net.ListenPacket("udp", ":0") // both families, as another program would
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.LocalAddr().(*net.UDPAddr).Port
	key, _ := wgtypes.GeneratePrivateKey()
	for _, limit := range []int{wgdev.DefaultInflight, 0} {
		for _, linkUp := range []bool{true, false} {
			t.Run(fmt.Sprintf("inflight-%d/link-up-%v", limit, linkUp), func(t *testing.T) {
				name := fmt.Sprintf("cpbusy%d-%d", limit, map[bool]int{false: 0, true: 1}[linkUp])
				d, err := wgdev.CreateWithInflight(name, 1420, slog.New(slog.DiscardHandler), limit)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				err = d.Dev.IpcSet(fmt.Sprintf("private_key=%x\nlisten_port=%d\n", key[:], port))
				if err != nil {
					t.Fatalf("configure listen_port %d while down: %v", port, err)
				}
				if linkUp {
					link, err := netlink.LinkByName(name)
					if err != nil {
						t.Fatal(err)
					}
					if err := netlink.LinkSetUp(link); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(eventsSettle)
				if err := d.Up(); err == nil {
					t.Fatalf("Up succeeded with UDP port %d taken; the device listens on port %s", port, boundPort(t, d))
				} else if !strings.Contains(err.Error(), "address already in use") {
					t.Errorf("Up failed for another reason than the busy port: %v", err)
				}
				if p := boundPort(t, d); p != fmt.Sprint(port) && p != "0" {
					t.Errorf("after the failed Up the device listens on port %s", p)
				}
			})
		}
	}
}
