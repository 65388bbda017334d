package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testpg"
)

// The gateway benchmarks run the real vpn-gateway in the lab and register
// through HTTP from the laptop, as clients do: token check, proof, nonce,
// address, peer, WireGuard device, audit. Run them with a fixed count, e.g.
//
//	go test -run '^$' -bench 'Register' -benchtime 1000x ./internal/tstest/e2e

func benchGateway(b *testing.B, backend, pool4 string) (*scaleLab, *gateway) {
	b.Helper()
	s := newScaleLab(b)
	store := filepath.Join(s.Dir, "gateway.db")
	if backend == "postgres" {
		store = testpg.StartServer(b).SocketDSN
	}
	gw := s.startGateway(b, gwSpec{Name: "gateway", Node: s.GW, Listen: lab.GWPublicIP4 + ":8080", Endpoint: lab.GWPublicIP4,
		Iface: s.Prefix + "eng", Port: lab.EngPort, Table: 1100, Store: store, Pool4: pool4})
	return s, gw
}

func failed(devs []*device) error {
	for _, d := range devs {
		if d.err != nil {
			return fmt.Errorf("%s: %w", d.user, d.err)
		}
	}
	return nil
}

// BenchmarkRegister: registrations per second of new devices, one at a
// time and 64 in flight, and of renewals (known devices) 64 in flight.
func BenchmarkRegister(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, mode := range []struct {
			name     string
			inFlight int
			renew    bool
		}{{"new/serial", 1, false}, {"new/parallel-64", 64, false}, {"renew/parallel-64", 64, true}} {
			b.Run(backend+"/"+mode.name, func(b *testing.B) {
				s, gw := benchGateway(b, backend, "100.64.0.0/16")
				devs := s.newDevices(b, 0, b.N)
				c := s.registrar(gw.spec.URL())
				clients := func(int) *gwapi.Client { return c }
				if mode.renew {
					registerAll(clients, devs, 64)
					if err := failed(devs); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				took := registerAll(clients, devs, mode.inFlight)
				b.StopTimer()
				if err := failed(devs); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/took.Seconds(), "registrations/s")
			})
		}
	}
}

// retryUnavailable registers again, up to three more times, the devices
// the gateway answered 503 (a store read past its 3 s under a loaded
// machine), as a client does on "retry shortly", and returns the time it
// took.
func retryUnavailable(c *gwapi.Client, devs []*device) time.Duration {
	var took time.Duration
	for range 3 {
		var again []*device
		for _, d := range devs {
			if d.err != nil && strings.Contains(d.err.Error(), "503") {
				again = append(again, d)
			}
		}
		if len(again) == 0 {
			break
		}
		time.Sleep(time.Second)
		took += registerAll(func(int) *gwapi.Client { return c }, again, 64)
	}
	return took
}

// rss reads a process's resident set size and its peak, in bytes.
func rss(b *testing.B, pid int) (cur, peak int64) {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "VmRSS:" {
				cur = kb << 10
			} else {
				peak = kb << 10
			}
		}
	}
	return cur, peak
}

// BenchmarkGatewayMemory10k: the gateway's resident memory idle (the
// baseline) and with 10,000 peers registered on one network: right after
// registering them (each registration puts its key on the device, where it
// stays until idle_peer_timeout, 10s here), once the idle ones are
// trimmed, and after a restart, whose device starts with none (lazy
// peers). Then activePeers clients handshake (in-process wireguard-go in
// the laptop namespace, keepalive 5s), so the cost of an active peer shows
// apart from a registered one.
func BenchmarkGatewayMemory10k(b *testing.B) {
	const peers, activePeers = 10000, 200
	for range b.N {
		s := newScaleLab(b)
		gw := s.startGateway(b, gwSpec{Name: "gateway", Node: s.GW, Listen: lab.GWPublicIP4 + ":8080", Endpoint: lab.GWPublicIP4,
			Iface: s.Prefix + "eng", Port: lab.EngPort, Table: 1100, Store: filepath.Join(s.Dir, "gateway.db"), Pool4: "100.64.0.0/16",
			Extra: "idle_peer_timeout: 10s\n"})
		time.Sleep(2 * time.Second)
		idle, _ := rss(b, gw.proc.Pid())
		devs := s.newDevices(b, 0, peers)
		c := s.registrar(gw.spec.URL())
		took := registerAll(func(int) *gwapi.Client { return c }, devs, 64)
		took += retryUnavailable(c, devs)
		if err := failed(devs); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		full, peak := rss(b, gw.proc.Pid())
		onDev := len(wgDump(b, s.GW, gw.spec.Iface))
		if _, ok := waitUntil(time.Minute, func() bool { return len(wgDump(b, s.GW, gw.spec.Iface)) == 0 }); !ok {
			b.Fatalf("%d peers still on the device a minute after registering", len(wgDump(b, s.GW, gw.spec.Iface)))
		}
		time.Sleep(2 * time.Second)
		trimmed, _ := rss(b, gw.proc.Pid())
		b.ReportMetric(float64(idle), "idle-rss-bytes")
		b.ReportMetric(float64(full), "registered-10k-rss-bytes")
		b.ReportMetric(float64(peak), "peak-rss-bytes")
		b.ReportMetric(float64(trimmed), "trimmed-10k-rss-bytes")
		b.ReportMetric(float64(peers)/took.Seconds(), "registrations/s")
		// Logged too: a restart that fails below loses the metrics.
		b.Logf("idle %.1f MB, 10k peers just registered %.1f MB (%d on the device; peak %.1f MB), all trimmed %.1f MB, %.0f registrations/s",
			float64(idle)/1e6, float64(full)/1e6, onDev, float64(peak)/1e6, float64(trimmed)/1e6, float64(peers)/took.Seconds())
		gw.stop(b)
		gw.start(b, s)
		if n := len(wgDump(b, s.GW, gw.spec.Iface)); n != 0 {
			b.Fatalf("%d peers on the device after the restart, want 0 (lazy peers)", n)
		}
		time.Sleep(2 * time.Second)
		restarted, _ := rss(b, gw.proc.Pid())
		b.ReportMetric(float64(restarted), "restarted-10k-rss-bytes")
		b.ReportMetric(float64(restarted-idle)/peers, "bytes/peer")
		b.ReportMetric(float64(restarted)/float64(idle), "x-idle")

		clients := make([]*wgClient, activePeers)
		for i := range clients {
			clients[i] = clientFor(b, s.Laptop, devs[i])
			clients[i].keepalive(b, 5)
			clients[i].send()
		}
		if _, ok := waitUntil(time.Minute, func() bool {
			for _, cl := range clients {
				if cl.lastHandshake(b).IsZero() {
					return false
				}
			}
			return true
		}); !ok {
			b.Fatal("not every active client completed its handshake within a minute")
		}
		time.Sleep(2 * time.Second)
		active, _ := rss(b, gw.proc.Pid())
		onDev = len(wgDump(b, s.GW, gw.spec.Iface))
		b.ReportMetric(float64(active), "active-200-rss-bytes")
		b.ReportMetric(float64(active-restarted)/activePeers, "bytes/active-peer")
		b.Logf("restarted (10k registered, 0 on the device) %.1f MB, %.0f bytes/registered peer; %d active (%d on the device) %.1f MB, %.0f bytes/active peer",
			float64(restarted)/1e6, float64(restarted-idle)/peers, activePeers, onDev, float64(active)/1e6, float64(active-restarted)/activePeers)
		for _, cl := range clients {
			cl.dev.Close()
		}
	}
}
