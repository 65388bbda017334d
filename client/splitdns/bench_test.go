package splitdns

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clearpath-vpn/clearpath/internal/tstest/dnstest"
)

// BenchmarkStub measures, in one run, queries to a loopback upstream
// directly and through the stub (which forwards to it): latency
// sequentially (one query in flight) and throughput in parallel. The
// difference is what the stub adds: a decode, a route decision, a new
// upstream socket per query, an encode.
//
//	go test -run '^$' -bench BenchmarkStub -benchtime 3s ./client/splitdns/
func BenchmarkStub(b *testing.B) {
	up, err := dnstest.Listen(map[string]netip.Addr{"www.example.com": netip.MustParseAddr("192.0.2.80"), "db.corp.internal": netip.MustParseAddr("10.10.0.5")})
	if err != nil {
		b.Fatal(err)
	}
	defer up.Close()
	s, err := Start(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Tunnel: []netip.AddrPort{up.Addr}, Domains: []string{"corp.internal"}, Upstream: []netip.AddrPort{up.Addr}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		name   string
		server netip.AddrPort
		qname  string
	}{
		{"direct", up.Addr, "www.example.com"},
		{"stub-upstream", s.Addr(), "www.example.com"},
		{"stub-tunnel-domain", s.Addr(), "db.corp.internal"},
	} {
		b.Run(c.name+"/serial", func(b *testing.B) {
			conn, err := dns.Dial("udp", c.server.String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			q := new(dns.Msg)
			q.SetQuestion(dns.Fqdn(c.qname), dns.TypeA)
			start := time.Now()
			for b.Loop() {
				q.Id = dns.Id()
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				if err := conn.WriteMsg(q); err != nil {
					b.Fatal(err)
				}
				if r, err := conn.ReadMsg(); err != nil || len(r.Answer) != 1 {
					b.Fatalf("answer %v, %v", r, err)
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(el.Microseconds())/float64(b.N), "µs/query")
			b.ReportMetric(float64(b.N)/el.Seconds(), "queries/s")
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.SetParallelism(4)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				conn, err := dns.Dial("udp", c.server.String())
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				q := new(dns.Msg)
				q.SetQuestion(dns.Fqdn(c.qname), dns.TypeA)
				for pb.Next() {
					q.Id = dns.Id()
					conn.SetDeadline(time.Now().Add(2 * time.Second))
					if err := conn.WriteMsg(q); err != nil {
						b.Error(err)
						return
					}
					if _, err := conn.ReadMsg(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
		})
	}
}
