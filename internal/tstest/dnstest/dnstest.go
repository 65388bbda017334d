// Package dnstest is a small authoritative DNS server (github.com/miekg/dns)
// for tests and the lab: it answers A/AAAA for the names of its zone,
// NXDOMAIN for the rest, and records every query with the address it came
// from, so a test can tell which side a name was resolved on.
package dnstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Query is one question the server saw.
type Query struct {
	Name string
	From netip.Addr
	TCP  bool
}

// Server is a running test server.
type Server struct {
	zone     map[string]netip.Addr
	udp, tcp *dns.Server
	Addr     netip.AddrPort

	mu      sync.Mutex
	queries []Query
}

// Serve answers on pc (and ln, if not nil) from zone: fully qualified or
// bare names mapped to the address answered (A for IPv4, AAAA for IPv6).
func Serve(pc net.PacketConn, ln net.Listener, zone map[string]netip.Addr) *Server {
	s := &Server{zone: map[string]netip.Addr{}}
	for n, a := range zone {
		s.zone[dns.Fqdn(strings.ToLower(n))] = a
	}
	s.Addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	var wg sync.WaitGroup
	wg.Add(1)
	s.udp = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: wg.Done}
	go s.udp.ActivateAndServe()
	if ln != nil {
		wg.Add(1)
		s.tcp = &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: wg.Done}
		go s.tcp.ActivateAndServe()
	}
	wg.Wait()
	return s
}

// Listen starts a server on 127.0.0.1 (a free port, UDP and TCP).
func Listen(zone map[string]netip.Addr) (*Server, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, err
	}
	return Serve(pc, ln, zone), nil
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 {
		qq := q.Question[0]
		var from netip.Addr
		var tcp bool
		switch a := w.RemoteAddr().(type) {
		case *net.UDPAddr:
			from = a.AddrPort().Addr().Unmap()
		case *net.TCPAddr:
			from, tcp = a.AddrPort().Addr().Unmap(), true
		}
		s.mu.Lock()
		s.queries = append(s.queries, Query{Name: strings.ToLower(qq.Name), From: from, TCP: tcp})
		s.mu.Unlock()
		a, ok := s.zone[strings.ToLower(qq.Name)]
		switch {
		case !ok:
			m.SetRcode(q, dns.RcodeNameError)
		case qq.Qtype == dns.TypeA && a.Is4():
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: a.AsSlice()})
		case qq.Qtype == dns.TypeAAAA && a.Is6():
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 5}, AAAA: a.AsSlice()})
		}
	}
	w.WriteMsg(m)
}

// Queries returns what the server saw so far.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.queries...)
}

// Saw counts the queries for name (bare or fully qualified).
func (s *Server) Saw(name string) (n int, from []netip.Addr) {
	fq := dns.Fqdn(strings.ToLower(name))
	for _, q := range s.Queries() {
		if q.Name == fq {
			n++
			from = append(from, q.From)
		}
	}
	return n, from
}

// Close stops the server.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.udp.ShutdownContext(ctx)
	if s.tcp != nil {
		s.tcp.ShutdownContext(ctx)
	}
}
