package splitdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Config is what the stub answers and where it asks.
type Config struct {
	// Listen is the stub's address (UDP and TCP); default StubAddr:53.
	Listen netip.AddrPort
	// Tunnel are the servers the gateway pushed (inside the tunnel);
	// Domains the routing domains they answer (canonical: lower case,
	// no final dot).
	Tunnel  []netip.AddrPort
	Domains []string
	// All sends every query to Tunnel (no routing domains and the user
	// captures all traffic: --all-traffic).
	All bool
	// Upstream are the servers the resolver file named before `vpn up`:
	// every name outside the routing domains goes to them.
	Upstream []netip.AddrPort
	// Timeout per server tried; default 2 s.
	Timeout time.Duration
}

// Stub is the running stub resolver.
type Stub struct {
	cfg      Config
	log      *slog.Logger
	udp, tcp *dns.Server
	tunnel   []string
	mu       sync.RWMutex
	upstream []string // under mu: SetUpstream follows a LAN change

	// Counters of queries answered from each side and of failures.
	ViaTunnel, ViaUpstream, Failed atomic.Int64
}

// Route says which side answers name: true for the tunnel's servers.
func (c Config) Route(name string) bool {
	if c.All {
		return true
	}
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	for _, d := range c.Domains {
		if n == d || strings.HasSuffix(n, "."+d) {
			return true
		}
	}
	return false
}

// Start listens on cfg.Listen (UDP and TCP) and serves until Close. A
// busy address is an error naming it.
func Start(cfg Config, log *slog.Logger) (*Stub, error) {
	if !cfg.Listen.IsValid() {
		cfg.Listen = netip.AddrPortFrom(StubAddr, 53)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stub{cfg: cfg, log: log}
	for _, a := range cfg.Tunnel {
		s.tunnel = append(s.tunnel, a.String())
	}
	for _, a := range cfg.Upstream {
		s.upstream = append(s.upstream, a.String())
	}
	pc, ln, err := listenBoth(cfg.Listen)
	if err != nil {
		return nil, err
	}
	if cfg.Listen.Port() == 0 { // tests: the free port found
		s.cfg.Listen = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(2)
	s.udp.NotifyStartedFunc = wg.Done
	s.tcp.NotifyStartedFunc = wg.Done
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	wg.Wait()
	return s, nil
}

// listenBoth listens on addr over UDP and TCP. With port 0 (tests) both
// take the free port UDP found; one that is free for UDP may be taken for
// TCP, so a few ports are tried.
func listenBoth(addr netip.AddrPort) (net.PacketConn, net.Listener, error) {
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr.String())
		if err != nil {
			return nil, nil, fmt.Errorf("stub resolver: listen on udp %s: %w", addr, err)
		}
		at := addr
		if addr.Port() == 0 {
			at = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		}
		ln, err := net.Listen("tcp", at.String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if addr.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) || attempt == 10 {
			return nil, nil, fmt.Errorf("stub resolver: listen on tcp %s: %w", at, err)
		}
	}
}

// Port53 gives each address port 53.
func Port53(addrs []netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range addrs {
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	return out
}

// Addr is where the stub listens.
func (s *Stub) Addr() netip.AddrPort { return s.cfg.Listen }

// Close stops the stub.
func (s *Stub) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
}

// ServeDNS implements dns.Handler: the question's name picks the side;
// the servers of that side are asked in order (over TCP when the query
// came over TCP or a UDP answer was truncated); SERVFAIL when none
// answers. A routing domain's query never falls back to the LAN side.
func (s *Stub) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) == 0 {
		m := new(dns.Msg)
		m.SetRcodeFormatError(q)
		w.WriteMsg(m)
		return
	}
	name := q.Question[0].Name
	s.mu.RLock()
	servers, counter := s.upstream, &s.ViaUpstream
	s.mu.RUnlock()
	if s.cfg.Route(name) {
		servers, counter = s.tunnel, &s.ViaTunnel
	}
	_, overTCP := w.RemoteAddr().(*net.TCPAddr)
	var last error
	for _, srv := range servers {
		r, err := s.exchange(q, srv, overTCP)
		if err != nil {
			last = err
			continue
		}
		counter.Add(1)
		r.Id = q.Id
		if !overTCP {
			// Keep within what the client said it can take.
			r.Truncate(udpSize(q))
		}
		w.WriteMsg(r)
		return
	}
	s.Failed.Add(1)
	if last == nil {
		last = errors.New("no server for this name")
	}
	s.log.Debug("stub resolver: no answer", "name", name, "servers", servers, "err", last)
	m := new(dns.Msg)
	m.SetRcode(q, dns.RcodeServerFailure)
	w.WriteMsg(m)
}

func (s *Stub) exchange(q *dns.Msg, srv string, overTCP bool) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: s.cfg.Timeout, UDPSize: dns.DefaultMsgSize}
	if overTCP {
		c.Net = "tcp"
	}
	r, _, err := c.Exchange(q, srv)
	if err == nil && r.Truncated && !overTCP {
		c.Net = "tcp"
		r, _, err = c.Exchange(q, srv)
	}
	return r, err
}

func udpSize(q *dns.Msg) int {
	if o := q.IsEdns0(); o != nil && o.UDPSize() > dns.MinMsgSize {
		return int(o.UDPSize())
	}
	return dns.MinMsgSize
}

// SetUpstream replaces the servers names outside the routing domains go
// to (the LAN's resolver changed); queries in flight finish on the old.
func (s *Stub) SetUpstream(up []netip.AddrPort) {
	var l []string
	for _, a := range up {
		l = append(l, a.String())
	}
	s.mu.Lock()
	s.upstream = l
	s.mu.Unlock()
}
