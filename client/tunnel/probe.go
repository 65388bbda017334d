package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Probe sends ICMP echo requests from src to dst until one is answered or
// ctx ends. It proves that packets cross the tunnel both ways (the first one
// also triggers the WireGuard handshake).
func Probe(ctx context.Context, src, dst netip.Addr) error {
	network, proto := "ip4:icmp", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, src.String())
	if err != nil {
		return fmt.Errorf("open ICMP socket on %s: %w", src, err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	buf := make([]byte, 1500)
	for seq := 1; ; seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("clearpath-probe")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return fmt.Errorf("send probe to %s: %w", dst, err)
		}
		deadline := time.Now().Add(300 * time.Millisecond)
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("no reply from %s through the tunnel: %w", dst, err)
			}
			c.SetReadDeadline(deadline)
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout: send the next probe
			}
			if ia, ok := from.(*net.IPAddr); !ok || !ia.IP.Equal(dst.AsSlice()) {
				continue
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != replyType {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
				return nil
			}
		}
	}
}
