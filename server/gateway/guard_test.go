package gateway

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/config"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestClientAddr(t *testing.T) {
	p := proxies{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")}
	a := netip.MustParseAddr
	cases := []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.9", []string{"198.51.100.7"}, "203.0.113.9"},                  // untrusted peer: header ignored
		{"10.0.0.5", nil, "10.0.0.5"},                                             // trusted, no header: the proxy
		{"10.0.0.5", []string{"198.51.100.7"}, "198.51.100.7"},                    // one hop
		{"10.0.0.5", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},           // forged left part ignored
		{"10.0.0.5", []string{"6.6.6.6, 198.51.100.7, 10.0.0.9"}, "198.51.100.7"}, // a second trusted hop skipped
		{"10.0.0.5", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7"},         // several headers
		{"10.0.0.5", []string{"garbage, 198.51.100.7"}, "198.51.100.7"},           // junk left of the client
		{"10.0.0.5", []string{"198.51.100.7, junk"}, "10.0.0.5"},                  // junk at the right: the proxy
		{"10.0.0.5", []string{"10.0.0.7, 10.0.0.8"}, "10.0.0.7"},                  // all trusted: leftmost
		{"fd00::1", []string{"2001:db8::5"}, "2001:db8::5"},                       // IPv6
		{"::ffff:10.0.0.5", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},      // mapped
	}
	for _, c := range cases {
		if got := p.clientAddr(a(c.peer).Unmap(), c.xff); got != a(c.want) {
			t.Errorf("peer %s XFF %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	if got := (proxies(nil)).clientAddr(a("10.0.0.5"), []string{"1.2.3.4"}); got != a("10.0.0.5") {
		t.Errorf("no trusted proxies: XFF believed (%s)", got)
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{"198.51.100.7": "198.51.100.7", "::ffff:198.51.100.7": "198.51.100.7",
		"2001:db8:1:2:aaaa::1": "2001:db8:1:2::", "2001:db8:1:2:bbbb::9": "2001:db8:1:2::"} {
		if got := sourceKey(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("sourceKey(%s) = %s, want %s", in, got, want)
		}
	}
	if remoteAddr("[2001:db8::1]:443").String() != "2001:db8::1" || remoteAddr("10.0.0.1").String() != "10.0.0.1" {
		t.Error("remoteAddr")
	}
}

func TestBuckets(t *testing.T) {
	b := newBuckets(config.Rate{Burst: 3, Per: 30 * time.Second}) // one every 10s
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := b.take("alice", now); !ok {
			t.Fatalf("take %d of the burst refused", i)
		}
	}
	ok, retry := b.take("alice", now)
	if ok || retry < 9*time.Second || retry > 10*time.Second {
		t.Fatalf("4th take: ok %v retry %s, want refused with about 10s", ok, retry)
	}
	if ok, _ := b.take("bob", now); !ok {
		t.Fatal("bob pays for alice")
	}
	// A refused take spends nothing: 10s later exactly one is back.
	now = now.Add(10 * time.Second)
	if ok, _ := b.take("alice", now); !ok {
		t.Fatal("after 10s no token back")
	}
	if ok, _ := b.take("alice", now); ok {
		t.Fatal("two tokens back after 10s")
	}
	if ok, _ := (*buckets)(nil).take("x", now); !ok {
		t.Fatal("nil buckets refuse")
	}
	if ok, _ := newBuckets(config.Rate{}).take("x", now); !ok {
		t.Fatal("off refuses")
	}
	// Idle buckets are forgotten once there are many.
	for i := range 5000 {
		b.take(fmt.Sprint(i), now)
	}
	b.take("trigger", now.Add(time.Minute))
	if n := len(b.m); n > 10 {
		t.Errorf("%d buckets kept after they all refilled", n)
	}
}

// serveGuarded runs the API server settings and connection caps of c on a
// loopback port with a handler that answers "ok"; it returns the address
// and the limiter.
func serveGuarded(t *testing.T, c config.API, trusted []netip.Prefix) (string, *connLimiter, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := &atomic.Int64{}
	lim := newConnLimiter(ln, c.MaxConnsPerSource, c.MaxConns, proxies(trusted).trusted, func(string, netip.Addr) { refused.Add(1) })
	srv := apiServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }), c, quietLog())
	go srv.Serve(lim)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), lim, refused
}

func apiDefaults() config.API {
	c := &config.Config{}
	c.API.ReadHeaderTimeout = time.Second
	return withDefaults(c).API
}

func withDefaults(c *config.Config) *config.Config {
	// Parse applies defaults; go through it with a minimal valid file.
	full, err := config.Parse([]byte(`endpoint: vpn.example.com
oidc: {issuer: "https://id.example.com", client_id: clearpath}
networks: [{name: eng, group: engineering, interface: wg-eng, listen_port: 51820, pool: [100.64.0.0/24], allow: [10.10.0.0/16]}]
`))
	if err != nil {
		panic(err)
	}
	if c.API.ReadHeaderTimeout != 0 {
		full.API.ReadHeaderTimeout = c.API.ReadHeaderTimeout
	}
	return full
}

// dialFrom connects to addr from the loopback address src (127.0.0.x).
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return d.Dial("tcp", addr)
}

func get(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Status, nil
}

// One address opens 200 idle connections: the listener keeps 64 and resets
// the rest at once; another address is still served, and a closed
// connection frees its slot.
func TestConnCapPerSource(t *testing.T) {
	c := apiDefaults()
	addr, lim, refused := serveGuarded(t, c, nil)
	var conns []net.Conn
	defer func() {
		for _, x := range conns {
			x.Close()
		}
	}()
	for range 200 {
		x, err := dialFrom("127.0.0.2", addr)
		if err != nil {
			continue // reset before connect returned: refused too
		}
		conns = append(conns, x)
	}
	if _, ok := waitFor(3*time.Second, func() bool { return refused.Load() == 200-int64(c.MaxConnsPerSource) }); !ok {
		t.Fatalf("refused %d of 200, want %d", refused.Load(), 200-c.MaxConnsPerSource)
	}
	all, mine := lim.openConns(netip.MustParseAddr("127.0.0.2"))
	if all != c.MaxConnsPerSource || mine != c.MaxConnsPerSource {
		t.Fatalf("open: %d in all, %d from the attacker; want %d", all, mine, c.MaxConnsPerSource)
	}
	// The refused ones read EOF or a reset, the kept ones are served.
	alive := 0
	for _, x := range conns {
		if st, err := get(x); err == nil && st == "200 OK" {
			alive++
		}
	}
	if alive != c.MaxConnsPerSource {
		t.Errorf("%d connections served, want %d", alive, c.MaxConnsPerSource)
	}
	other, err := dialFrom("127.0.0.3", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if st, err := get(other); err != nil || st != "200 OK" {
		t.Fatalf("another address: %q %v", st, err)
	}
	conns[0].Close()
	if _, ok := waitFor(2*time.Second, func() bool { _, n := lim.openConns(netip.MustParseAddr("127.0.0.2")); return n < c.MaxConnsPerSource }); !ok {
		t.Fatal("closing a connection did not free its slot")
	}
	again, err := dialFrom("127.0.0.2", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if st, err := get(again); err != nil || st != "200 OK" {
		t.Fatalf("after a slot was freed: %q %v", st, err)
	}
}

// A trusted proxy's connections are not capped per source (they carry many
// clients), only by the total.
func TestConnCapSparesTrustedProxyButNotTotal(t *testing.T) {
	c := apiDefaults()
	c.MaxConnsPerSource, c.MaxConns = 4, 10
	addr, _, refused := serveGuarded(t, c, []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32")})
	var conns []net.Conn
	defer func() {
		for _, x := range conns {
			x.Close()
		}
	}()
	for range 12 {
		if x, err := dialFrom("127.0.0.4", addr); err == nil {
			conns = append(conns, x)
		}
	}
	if _, ok := waitFor(3*time.Second, func() bool { return refused.Load() == 2 }); !ok {
		t.Fatalf("refused %d of 12 proxy connections, want 2 (total cap 10)", refused.Load())
	}
}

// Slowloris within the cap: a client that sends its headers a byte at a
// time is cut at read_header_timeout; one that never sends its body at
// read_timeout; an idle keep-alive connection at idle_timeout.
func TestSlowClientsAreCut(t *testing.T) {
	c := apiDefaults()
	c.ReadHeaderTimeout, c.ReadTimeout, c.IdleTimeout = 500*time.Millisecond, time.Second, time.Second
	addr, _, _ := serveGuarded(t, c, nil)
	closedAfter := func(t *testing.T, c net.Conn, drip string) time.Duration {
		start := time.Now()
		go func() {
			for i := 0; i < len(drip); i++ {
				if _, err := c.Write([]byte{drip[i]}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
		return time.Since(start)
	}
	t.Run("headers", func(t *testing.T) {
		x, err := dialFrom("127.0.0.5", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		d := closedAfter(t, x, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "+strings.Repeat("a", 200))
		if d > 3*time.Second {
			t.Errorf("slow headers held %s, want cut near 0.5s", d)
		}
		t.Logf("slow headers cut after %s", d.Round(10*time.Millisecond))
	})
	t.Run("body", func(t *testing.T) {
		x, err := dialFrom("127.0.0.5", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		// Headers at once, then a body that never comes: the handler does
		// not read it, so the server answers, then closes on the unread
		// body or at read_timeout.
		io.WriteString(x, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
		d := closedAfter(t, x, strings.Repeat("b", 100))
		if d > 4*time.Second {
			t.Errorf("slow body held %s, want cut near 1s", d)
		}
		t.Logf("slow body cut after %s", d.Round(10*time.Millisecond))
	})
	t.Run("idle", func(t *testing.T) {
		x, err := dialFrom("127.0.0.5", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		if st, err := get(x); err != nil || st != "200 OK" {
			t.Fatalf("first request: %q %v", st, err)
		}
		d := closedAfter(t, x, "")
		if d > 4*time.Second {
			t.Errorf("idle keep-alive held %s, want cut near 1s", d)
		}
		t.Logf("idle keep-alive cut after %s", d.Round(10*time.Millisecond))
	})
}

// Headers of 1 MB are refused with 431 before any handler runs.
func TestHugeHeadersRefused(t *testing.T) {
	addr, _, _ := serveGuarded(t, apiDefaults(), nil)
	for _, size := range []int{930 << 10, 1 << 20} {
		x, err := dialFrom("127.0.0.6", addr)
		if err != nil {
			t.Fatal(err)
		}
		x.SetDeadline(time.Now().Add(5 * time.Second))
		go io.WriteString(x, "GET /api/v1/networks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+strings.Repeat("A", size)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(x), nil)
		if err != nil {
			t.Fatalf("%d-byte header: %v", size, err)
		}
		resp.Body.Close()
		x.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d-byte header: %s, want 431", size, resp.Status)
		}
	}
}

func waitFor(d time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start), true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start), cond()
}
