// Package icmpecho sends ICMP echo requests and waits for a reply: the
// client's tunnel probe (client/tunnel.Probe) and the gateway doctor's
// return-route checks (server/gwdoctor) share it. It opens a raw ICMP
// socket: root or CAP_NET_RAW.
package icmpecho

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
)

// Options say how long to try.
type Options struct {
	// Tries is how many requests to send; 0 sends until ctx ends.
	Tries int
	// Wait is how long to wait for a reply before the next request.
	Wait time.Duration
	// MaxWait, when above Wait, doubles the wait after each request up
	// to MaxWait (a reply to any earlier request still counts).
	MaxWait time.Duration
	// Payload marks the requests (seen in a capture).
	Payload string
	// RetryUnsent counts a request that cannot be sent (no address or
	// route to dst yet, as while a tunnel comes up) as one unanswered,
	// where it is otherwise an error.
	RetryUnsent bool
}

// ErrNoReply means Tries requests went unanswered.
var ErrNoReply = errors.New("no reply")

// Ping sends echo requests from src to dst, one every o.Wait, until one is
// answered, and returns that one's round trip. It stops with ctx's error
// when ctx ends, with ErrNoReply after o.Tries unanswered requests.
func Ping(ctx context.Context, src, dst netip.Addr, o Options) (time.Duration, error) {
	network, proto := "ip4:icmp", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	if o.Wait <= 0 {
		o.Wait = time.Second
	}
	c, err := icmp.ListenPacket(network, src.String())
	if err != nil {
		return 0, fmt.Errorf("open ICMP socket on %s: %w", src, err)
	}
	defer c.Close()
	id := (os.Getpid() ^ int(time.Now().UnixNano())) & 0xffff
	buf := make([]byte, 1500)
	for seq := 1; o.Tries == 0 || seq <= o.Tries; seq++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte(o.Payload)}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return 0, err
		}
		sent := time.Now()
		deadline := sent.Add(o.wait(seq))
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			if !o.RetryUnsent {
				return 0, fmt.Errorf("send echo request to %s: %w", dst, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(deadline)):
			}
			continue
		}
		c.SetReadDeadline(deadline)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout: the next request
			}
			ia, ok := from.(*net.IPAddr)
			if !ok {
				continue
			}
			if fa, _ := netip.AddrFromSlice(ia.IP); fa.Unmap() != dst.Unmap() {
				continue
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != replyType {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
				return time.Since(sent), nil
			}
		}
	}
	return 0, ErrNoReply
}

// wait is how long to wait after request seq (from 1).
func (o Options) wait(seq int) time.Duration {
	w := o.Wait
	for i := 1; i < seq && w < o.MaxWait; i++ {
		w *= 2
	}
	if o.MaxWait > o.Wait && w > o.MaxWait {
		w = o.MaxWait
	}
	return w
}
