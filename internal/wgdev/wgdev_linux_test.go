package wgdev_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/wgdev"
)

// pair is two wgdev devices in two namespaces joined by one veth pair:
// tunnel addresses 10.99.0.1 (a) and 10.99.0.2 (b).
type pair struct {
	a, b   *lab.Node
	da, db *wgdev.Device
}

func newPair(t *testing.T) *pair {
	t.Helper()
	l := lab.NewT(t, lab.Options{})
	a, err := l.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.AddNode("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Connect(lab.End{Node: a, Addrs: []string{"192.0.2.1/24"}}, lab.End{Node: b, Addrs: []string{"192.0.2.2/24"}}); err != nil {
		t.Fatal(err)
	}
	ka, _ := wgtypes.GeneratePrivateKey()
	kb, _ := wgtypes.GeneratePrivateKey()
	p := &pair{a: a, b: b}
	p.da = startDevice(t, a, l.Prefix+"wa", ka, kb.PublicKey(), "192.0.2.2:51900", 51901, "10.99.0.1/24")
	p.db = startDevice(t, b, l.Prefix+"wb", kb, ka.PublicKey(), "192.0.2.1:51901", 51900, "10.99.0.2/24")
	p.waitTunnel(t)
	return p
}

// waitTunnel waits until a ping crosses the tunnel. wireguard-go handles
// the TUN's link events on a goroutine of its own; when one arrives late
// (a loaded machine) it reopens the UDP sockets from a thread outside the
// node's namespace (here the test's private one, see TestMain), and the
// tunnel is dead. Reopening them from inside the node, once the events are
// through, mends that; the production agent runs in its namespace as a
// whole process and never meets this.
func (p *pair) waitTunnel(t *testing.T) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.a.Ping(ctx, "10.99.0.2")
		cancel()
		if err == nil {
			if attempt > 1 {
				t.Logf("the tunnel carried a ping after reopening its sockets (attempt %d)", attempt)
			}
			return
		}
		if attempt == 20 {
			t.Fatalf("no ping through the tunnel after %d attempts: %v", attempt, err)
		}
		// A first handshake lost to a peer not yet listening is retried
		// after 5 s (REKEY_TIMEOUT): reopen the sockets only past that.
		if attempt%6 != 0 {
			continue
		}
		for _, nd := range []struct {
			n *lab.Node
			d *wgdev.Device
		}{{p.a, p.da}, {p.b, p.db}} {
			if err := nd.n.Do(nd.d.Dev.BindUpdate); err != nil {
				t.Fatalf("reopen the sockets of %s: %v", nd.d.Name, err)
			}
		}
	}
}

// startDevice creates, configures and brings up a device inside node. The
// TUN and the UDP sockets belong to the namespace of the thread that opens
// them, so all of it runs in node.Do.
func startDevice(t *testing.T, node *lab.Node, name string, priv wgtypes.Key, peer wgtypes.Key, endpoint string, port int, addr string) *wgdev.Device {
	t.Helper()
	var d *wgdev.Device
	err := node.Do(func() error {
		var err error
		if d, err = wgdev.Create(name, 1420, slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		conf := fmt.Sprintf("private_key=%x\nlisten_port=%d\npublic_key=%x\nendpoint=%s\nallowed_ip=10.99.0.0/24\n", priv[:], port, peer[:], endpoint)
		if err := d.Dev.IpcSet(conf); err != nil {
			return err
		}
		if err := d.Up(); err != nil {
			return err
		}
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr(addr)
		if err := netlink.AddrAdd(link, a); err != nil {
			return err
		}
		return netlink.LinkSetUp(link)
	})
	if err != nil {
		t.Fatalf("device %s in %s: %v", name, node.Name, err)
	}
	t.Cleanup(d.Close)
	return d
}

// transfer sends size bytes over TCP from node from to 10.99.0.x:port on
// node to and checks that the same bytes arrived.
func transfer(t *testing.T, from, to *lab.Node, dst string, size int) {
	t.Helper()
	ln, err := to.Listen("tcp", dst)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", dst)
	if err != nil {
		t.Fatalf("dial %s through the tunnel: %v", dst, err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	chunk := make([]byte, 1<<16)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for sent := 0; sent < size; sent += len(chunk) {
		chunk[0] = byte(sent >> 16)
		h.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("send through the tunnel after %d bytes: %v", sent, err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	var want [32]byte
	copy(want[:], h.Sum(nil))
	select {
	case sum := <-got:
		if sum != want {
			t.Fatal("the receiver got other bytes than were sent")
		}
	case <-ctx.Done():
		t.Fatal("transfer did not finish in 60 s")
	}
	c.Close()
}

// TestInflightBound pushes bulk TCP both ways through a real tunnel with a
// small bound and checks that the bound holds (a read may overshoot by one
// batch), that it engaged, that every byte arrived, and that nothing stays
// counted once the tunnel is idle.
func TestInflightBound(t *testing.T) {
	lab.SkipUnlessRoot(t)
	const limit, batch = 32, 128
	t.Setenv(wgdev.InflightEnv, fmt.Sprint(limit))
	p := newPair(t)

	var maxHeld atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			for _, d := range []*wgdev.Device{p.da, p.db} {
				out, in := d.Inflight()
				for _, h := range []int{out.Held, in.Held} {
					if int64(h) > maxHeld.Load() {
						maxHeld.Store(int64(h))
					}
				}
			}
		}
	}()
	transfer(t, p.a, p.b, "10.99.0.2:5001", 64<<20)
	transfer(t, p.b, p.a, "10.99.0.1:5002", 64<<20)
	close(stop)
	wg.Wait()

	if m := maxHeld.Load(); m > limit+batch {
		t.Errorf("up to %d packets in flight, bound %d (+%d for one read)", m, limit, batch)
	}
	aOut, _ := p.da.Inflight()
	_, bIn := p.db.Inflight()
	if aOut.Limit != limit || aOut.Waits == 0 || bIn.Waits == 0 {
		t.Errorf("the bound did not engage: a out %+v, b in %+v", aOut, bIn)
	}
	time.Sleep(300 * time.Millisecond)
	for _, d := range []*wgdev.Device{p.da, p.db} {
		if out, in := d.Inflight(); out.Held > 2 || in.Held > 2 {
			t.Errorf("%s idle yet %d out, %d in still counted", d.Name, out.Held, in.Held)
		}
	}
}

// TestNoBound: CLEARPATH_WG_INFLIGHT=0 is stock wireguard-go, and it carries
// traffic too.
func TestNoBound(t *testing.T) {
	lab.SkipUnlessRoot(t)
	t.Setenv(wgdev.InflightEnv, "0")
	p := newPair(t)
	transfer(t, p.a, p.b, "10.99.0.2:5003", 4<<20)
	if out, in := p.da.Inflight(); out.Limit != 0 || in.Limit != 0 {
		t.Fatalf("bound %d/%d with %s=0", out.Limit, in.Limit, wgdev.InflightEnv)
	}
}
