package bpf_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/bpf/internal/tunnellab"
)

// udp6WithDestOpts builds an IPv6 UDP packet from src to dst:port carrying
// payload behind n destination-options headers (8 bytes each, PadN), with
// a valid UDP checksum.
func udp6WithDestOpts(src, dst netip.Addr, sport, dport uint16, payload []byte, n int) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	// Checksum over the pseudo-header (RFC 8200 8.1) and the datagram.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s16, d16 := src.As16(), dst.As16()
	add(s16[:])
	add(d16[:])
	add([]byte{0, 0, byte(len(udp) >> 8), byte(len(udp)), 0, 0, 0, 17})
	add(udp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	cs := ^uint16(sum)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], cs)

	var ext []byte
	for i := range n {
		next := byte(60)
		if i == n-1 {
			next = 17
		}
		ext = append(ext, next, 0, 1, 4, 0, 0, 0, 0)
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+len(udp)))
	h[6] = 17
	if n > 0 {
		h[6] = 60
	}
	h[7] = 64
	copy(h[8:], s16[:])
	copy(h[24:], d16[:])
	return append(append(h, ext...), udp...)
}

// The attack of issue 22 through a live tunnel: the client hides the
// destination port of a UDP datagram behind seven IPv6 extension headers.
// On main the filter logged it as protocol 60 without ports and let it
// through to the VPC; now it is dropped, written to the flow log
// ("unparsed", with the user) and logged by the gateway with the user. A
// datagram behind two headers still arrives (and is logged with its
// port), so the test can tell a drop from a broken path.
func TestUnparsedIPv6DroppedThroughTunnel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs and builds namespaces")
	}
	fl := newFilterLab(t, bpf.Options{})
	tl, ff, logs, logPath := fl.tl, fl.ff, fl.logs, fl.logPath
	const alice = "alice@example.com"
	for _, a := range []string{tunnellab.ClientAddr4, tunnellab.ClientAddr6} {
		if err := ff.OnPeer(netip.MustParseAddr(a), alice, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.GW.Do(func() error { return ff.AddInterface(tl.GWIface) }); err != nil {
		t.Fatal(err)
	}

	const port = 7777
	pc, err := tl.VPC.ListenPacket("udp6", fmt.Sprintf("[%s]:%d", tunnellab.AllowedDst6, port))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	received := func() []string {
		var got []string
		buf := make([]byte, 2048)
		for {
			pc.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return got
			}
			got = append(got, string(buf[:n]))
		}
	}
	src, dst := netip.MustParseAddr(tunnellab.ClientAddr6), netip.MustParseAddr(tunnellab.AllowedDst6)
	send := func(headers int, payload string) {
		t.Helper()
		pkt := udp6WithDestOpts(src, dst, 40001, port, []byte(payload), headers)
		err := tl.Client.Do(func() error {
			// IPPROTO_RAW on IPv6: the packet carries its own header.
			fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
			if err != nil {
				return fmt.Errorf("raw socket: %w", err)
			}
			defer syscall.Close(fd)
			return syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet6{Addr: dst.As16()})
		})
		if err != nil {
			t.Fatalf("send %d-header packet: %v", headers, err)
		}
	}
	send(2, "two headers")
	send(7, "seven headers")
	got := received()
	if !slices.Contains(got, "two headers") {
		t.Fatalf("the datagram behind 2 extension headers did not arrive (got %q): the path is broken, the test proves nothing", got)
	}
	if slices.Contains(got, "seven headers") {
		t.Errorf("the datagram behind 7 extension headers reached the VPC: its port was hidden from the flow log and it was let through")
	}

	if err := fl.close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flow log:\n%s", data)
	var unparsed, twoHeaders bool
	for r, err := range bpf.ReadFlowLog(bytes.NewReader(data)) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Dst != tunnellab.AllowedDst6 {
			continue
		}
		switch {
		case r.End == "unparsed" && r.User == alice && r.Verdict == "unparsed" && r.Src == tunnellab.ClientAddr6 && r.Proto == "60":
			unparsed = true
		case r.Proto == "udp" && r.DstPort != nil && *r.DstPort == port && r.User == alice && r.Verdict == "allow":
			twoHeaders = true
		case r.Proto == "60":
			t.Errorf("record %+v: a flow without its transport header", r)
		}
	}
	if !unparsed {
		t.Error("the flow log has no unparsed record of alice's 7-header packet")
	}
	if !twoHeaders {
		t.Errorf("the flow log has no udp record to port %d for the 2-header packet", port)
	}
	l := logs.String()
	if !strings.Contains(l, "IPv6 packet dropped: its extension headers hide the transport header") || !strings.Contains(l, "user="+alice) {
		t.Errorf("the gateway log does not report the dropped packet with its user:\n%s", l)
	}
}
