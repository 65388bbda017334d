package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// MinPathMTU is the smallest size PathMTU tries: IPv4's minimum
// reassembly size. Below it a path is broken, not narrow.
const MinPathMTU = 576

// Timing of one size's attempt: pmtuTries echo requests, each answered
// within pmtuWait or counted lost. A lost reply is retried so one dropped
// packet does not pass for a narrow path.
var (
	pmtuTries = 2
	pmtuWait  = 250 * time.Millisecond
)

var pmtuSeq atomic.Uint32

// PathMTU measures the largest packet (IP header included) that crosses
// from src to dst and back: echo requests with "don't fragment" of a
// binary-searched size between MinPathMTU and hi (usually the tunnel's
// MTU). Sent through the tunnel to the gateway's tunnel address, it
// finds the path MTU of the whole path, the outer packets' included,
// even where routers drop the ICMP errors that path MTU discovery needs
// (a PMTU black hole): the answer is what comes back, not what routers
// say. The socket uses IP(V6)_PMTUDISC_PROBE: packets are never
// fragmented here and cached path MTUs are ignored. Needs root (raw
// ICMP). It returns 0 and an error when even MinPathMTU gets no reply.
func PathMTU(ctx context.Context, src, dst netip.Addr, hi int) (int, error) {
	if hi < MinPathMTU {
		return 0, fmt.Errorf("path MTU to %s: the largest size to try (%d) is below %d", dst, hi, MinPathMTU)
	}
	network, hdr := "ip4:icmp", 20
	if dst.Is6() {
		network, hdr = "ip6:ipv6-icmp", 40
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = setDontFragment(int(fd), dst.Is6()) })
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, network, src.String())
	if err != nil {
		return 0, fmt.Errorf("path MTU to %s: open ICMP socket on %s: %w", dst, src, err)
	}
	defer pc.Close()
	p := &pmtuProber{c: pc, dst: dst, hdr: hdr, id: os.Getpid() & 0xffff, buf: make([]byte, 65536)}
	ok, err := p.passes(ctx, MinPathMTU)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("path MTU to %s: no reply even to %d-byte packets", dst, MinPathMTU)
	}
	lo := MinPathMTU // passes
	if ok, err := p.passes(ctx, hi); err != nil {
		return 0, err
	} else if ok {
		return hi, nil
	}
	for hi-lo > 1 { // lo passes, hi does not
		mid := (lo + hi) / 2
		ok, err := p.passes(ctx, mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

type pmtuProber struct {
	c   net.PacketConn
	dst netip.Addr
	hdr int
	id  int
	buf []byte
}

// passes reports whether an echo request of size bytes (IP header
// included) gets its reply.
func (p *pmtuProber) passes(ctx context.Context, size int) (bool, error) {
	reqType, replyType, proto := icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply), 1
	if p.dst.Is6() {
		reqType, replyType, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	data := make([]byte, size-p.hdr-8)
	copy(data, "clearpath-pmtu")
	for range pmtuTries {
		seq := int(pmtuSeq.Add(1) & 0xffff)
		b, err := (&icmp.Message{Type: reqType, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: data}}).Marshal(nil)
		if err != nil {
			return false, err
		}
		if _, err := p.c.WriteTo(b, &net.IPAddr{IP: p.dst.AsSlice()}); err != nil {
			if errors.Is(err, syscall.EMSGSIZE) {
				return false, nil // larger than the first hop's MTU
			}
			return false, fmt.Errorf("path MTU to %s: send %d bytes: %w", p.dst, size, err)
		}
		deadline := time.Now().Add(pmtuWait)
		for {
			if err := ctx.Err(); err != nil {
				return false, fmt.Errorf("path MTU to %s: %w", p.dst, err)
			}
			p.c.SetReadDeadline(deadline)
			n, from, err := p.c.ReadFrom(p.buf)
			if err != nil {
				break // this try is lost
			}
			if ia, ok := from.(*net.IPAddr); !ok || !ia.IP.Equal(p.dst.AsSlice()) {
				continue
			}
			m, err := icmp.ParseMessage(proto, p.buf[:n])
			if err != nil || m.Type != replyType {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == p.id && e.Seq == seq && len(e.Data) == len(data) {
				return true, nil
			}
		}
	}
	return false, nil
}
