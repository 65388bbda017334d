package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/clearpath-vpn/clearpath/internal/icmpecho"
)

// Ping sends ICMP echo requests from inside the node to addr (an IP
// literal) once per 200 ms until one is answered, a router answers
// "destination unreachable", or ctx ends (default 5 s). It needs no ping
// binary and its error tells "no reply" from "unreachable".
func (n *Node) Ping(ctx context.Context, addr string) (time.Duration, error) {
	dst, err := netip.ParseAddr(addr)
	if err != nil {
		return 0, fmt.Errorf("ping %q: %w", addr, err)
	}
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var c *icmp.PacketConn
	if err := n.Do(func() error {
		var err error
		c, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return 0, fmt.Errorf("ping %s from %s: %w", addr, n.Name, err)
	}
	defer c.Close()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	id := os.Getpid() & 0xffff
	to := &net.IPAddr{IP: dst.AsSlice()}
	var lastErr error
	for seq := 1; ; seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("clearpath-lab")}}
		b, _ := msg.Marshal(nil) // IPv6 checksums are filled in by the kernel
		sent := time.Now()
		if _, err := c.WriteTo(b, to); err != nil {
			lastErr = err
		} else {
			rtt, err := awaitReply(ctx, c, proto, replyType, dst, id, seq, sent)
			if err == nil {
				return rtt, nil
			}
			var un unreachableError
			if errors.As(err, &un) {
				// A router said so: waiting longer would not help.
				return 0, fmt.Errorf("ping %s from %s: %w", addr, n.Name, err)
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr == nil || errors.Is(lastErr, os.ErrDeadlineExceeded) {
				lastErr = errors.New("no reply")
			}
			return 0, fmt.Errorf("ping %s from %s: %w", addr, n.Name, lastErr)
		case <-time.After(time.Until(sent.Add(200 * time.Millisecond))):
		}
	}
}

// awaitReply reads until the echo reply for (id, seq) from dst arrives, an
// ICMP error about our packet arrives, or 200 ms pass.
func awaitReply(ctx context.Context, c *icmp.PacketConn, proto int, replyType icmp.Type, dst netip.Addr, id, seq int, sent time.Time) (time.Duration, error) {
	deadline := sent.Add(200 * time.Millisecond)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		nr, from, err := c.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		m, err := icmp.ParseMessage(proto, buf[:nr])
		if err != nil {
			continue
		}
		src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		switch body := m.Body.(type) {
		case *icmp.Echo:
			if m.Type == replyType && body.ID == id && body.Seq == seq && src.Unmap() == dst {
				return time.Since(sent), nil
			}
		case *icmp.DstUnreach:
			return 0, unreachableError{src}
		}
	}
}

type unreachableError struct{ from netip.Addr }

func (e unreachableError) Error() string {
	return fmt.Sprintf("destination unreachable (from %s)", e.from)
}

// FirstReply sends an ICMP echo from inside the node to dst (IPv4) every
// interval until one is answered, and returns when it is: the set-up time
// of a tunnel as bench/tunnelbench and internal/tstest/uplat measure it.
// Unlike Ping, a send error (the tunnel's address or route does not exist
// yet) counts as "no reply yet", and a reply to any earlier request counts
// (a tunnel may deliver the first request only after its handshake).
func (n *Node) FirstReply(ctx context.Context, dst string, interval time.Duration) error {
	addr, err := netip.ParseAddr(dst)
	if err != nil || !addr.Is4() {
		return fmt.Errorf("first reply: %q is not an IPv4 address", dst)
	}
	err = n.Do(func() error {
		_, err := icmpecho.Ping(ctx, netip.IPv4Unspecified(), addr, icmpecho.Options{Wait: interval, Payload: "clearpath-lab", RetryUnsent: true})
		return err
	})
	if err != nil {
		return fmt.Errorf("no reply from %s in %s: %w", dst, n.Name, err)
	}
	return nil
}
