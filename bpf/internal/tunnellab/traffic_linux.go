package tunnellab

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// SendTCP connects from the client to addr in the VPC, sends n bytes and
// waits for the server's acknowledgement; it returns the flow's key.
func (tl *Lab) SendTCP(t testing.TB, addr string, n int) (src, dst netip.AddrPort) {
	t.Helper()
	ln, err := tl.VPC.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		k, _ := io.Copy(io.Discard, c)
		c.Write([]byte("ok"))
		got <- k
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := tl.Client.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	if k := <-got; k != int64(n) || string(reply) != "ok" {
		t.Fatalf("TCP: server got %d of %d bytes, reply %q", k, n, reply)
	}
	la := c.LocalAddr().(*net.TCPAddr).AddrPort()
	ra := netip.MustParseAddrPort(addr)
	return netip.AddrPortFrom(la.Addr().Unmap(), la.Port()), ra
}

// EchoUDP sends count datagrams of size bytes from the client to an echo
// server at addr in the VPC and waits for each echo.
func (tl *Lab) EchoUDP(t testing.TB, addr string, count, size int) (src, dst netip.AddrPort) {
	t.Helper()
	pc, err := tl.VPC.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tl.Client.DialContext(ctx, "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for i := range count {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(bytes.Repeat([]byte{byte(i)}, size)); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || n != size {
			t.Fatalf("UDP echo %d: %d bytes, %v", i, n, err)
		}
	}
	la := c.LocalAddr().(*net.UDPAddr).AddrPort()
	ra := netip.MustParseAddrPort(addr)
	return netip.AddrPortFrom(la.Addr().Unmap(), la.Port()), ra
}

// TCXPrograms returns the ids of the programs on tcx ingress and egress of
// iface in node.
func (tl *Lab) TCXPrograms(t testing.TB, iface string) (ingress, egress []ebpf.ProgramID) {
	t.Helper()
	err := tl.GW.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		for _, q := range []struct {
			at  ebpf.AttachType
			dst *[]ebpf.ProgramID
		}{{ebpf.AttachTCXIngress, &ingress}, {ebpf.AttachTCXEgress, &egress}} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: q.at})
			if err != nil {
				return err
			}
			for _, p := range res.Programs {
				*q.dst = append(*q.dst, p.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ingress, egress
}
