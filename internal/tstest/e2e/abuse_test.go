package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// gatewayMetricsURL is metrics_listen's default inside gw (loopback).
const gatewayMetricsURL = "http://127.0.0.1:9587"

// vmRSS reads VmRSS of pid in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of the gateway: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/pid/status")
	return 0
}

// flood holds up to n TCP connections from node to addr: half idle, half
// sending the start of a request and never finishing it (slowloris). Every
// connection that is closed is dialled again each refill, as a persistent
// attacker would. Each connection's life is recorded.
type flood struct {
	node  *lab.Node
	addr  string
	n     int
	mu    sync.Mutex
	open  int
	dials atomic.Int64
	fails atomic.Int64 // dial errors (reset before connect returned)
	// lives of finished connections, split by how long they lasted.
	quick   atomic.Int64 // closed by the gateway within 1s: refused at accept
	cut     atomic.Int64 // held, then closed by the gateway (timeouts)
	maxHeld atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	conns   sync.WaitGroup
	all     []net.Conn
}

func startFlood(t *testing.T, node *lab.Node, addr string, n int) *flood {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < uint64(n)+1000 {
		t.Fatalf("file descriptor limit %d is too low for %d connections", lim.Cur, n)
	}
	f := &flood{node: node, addr: addr, n: n, stop: make(chan struct{}), done: make(chan struct{})}
	f.refill()
	go func() {
		defer close(f.done)
		tk := time.NewTicker(2 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tk.C:
				f.refill()
			}
		}
	}()
	return f
}

func (f *flood) refill() {
	f.mu.Lock()
	want := f.n - f.open
	f.mu.Unlock()
	var got []net.Conn
	f.node.Do(func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		for range want {
			f.dials.Add(1)
			c, err := d.Dial("tcp", f.addr)
			if err != nil {
				f.fails.Add(1)
				continue
			}
			got = append(got, c)
		}
		return nil
	})
	for i, c := range got {
		f.mu.Lock()
		f.open++
		f.all = append(f.all, c)
		f.mu.Unlock()
		f.conns.Add(1)
		go func() {
			defer f.conns.Done()
			start := time.Now()
			if i%2 == 0 {
				io.WriteString(c, "POST /api/v1/peers HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
			}
			io.Copy(io.Discard, c) // until the gateway closes it
			c.Close()
			if time.Since(start) < time.Second {
				f.quick.Add(1)
			} else {
				f.cut.Add(1)
			}
			f.mu.Lock()
			f.open--
			f.mu.Unlock()
		}()
	}
	f.mu.Lock()
	if int64(f.open) > f.maxHeld.Load() {
		f.maxHeld.Store(int64(f.open))
	}
	f.mu.Unlock()
}

// held is how many connections are open right now.
func (f *flood) held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

func (f *flood) Stop() {
	close(f.stop)
	<-f.done
	f.mu.Lock()
	for _, c := range f.all {
		c.Close()
	}
	f.mu.Unlock()
	f.conns.Wait()
}

// The API outlasts abuse: 5,000 idle or slow connections from one address
// (host, 198.51.100.2), kept up by re-dialling every 2 s, while a user on
// the laptop runs `vpn up`: it succeeds, /healthz answers in under a second,
// the gateway's RSS stays under 150 MB. The per-source cap keeps 64 of the
// attacker's connections and resets the rest at accept; those 64 are cut
// by the timeouts. Then: 1 MB of headers and a 930 KB token get 431 and a
// 10 KB token 401 unread; /metrics is not on the API address.
func TestAPIOutlastsAbuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.Gateway.Pid()
	rssBefore := vmRSS(t, pid)
	var rssMax atomic.Int64
	rssMax.Store(rssBefore)
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	// What the attack makes the gateway hold: its open descriptors.
	fds := func() int64 {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		return int64(len(ents))
	}
	fdsBefore := fds()
	var fdsMax atomic.Int64
	fdsMax.Store(fdsBefore)
	go func() {
		defer close(sampled)
		for {
			if n := fds(); n > fdsMax.Load() {
				fdsMax.Store(n)
			}
			select {
			case <-sampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
						kb, _ := strconv.ParseInt(f[1], 10, 64)
						if kb<<10 > rssMax.Load() {
							rssMax.Store(kb << 10)
						}
					}
				}
			}
		}
	}()

	start := time.Now()
	fl := startFlood(t, e.Host, stack.GatewayListen, 5000)
	t.Logf("attack: %d dials from %s in %s; %d held now", fl.dials.Load(), lab.HostPublicIP4, time.Since(start).Round(time.Millisecond), fl.held())

	// /healthz from another address, while the attack goes on.
	hc := e.Laptop.HTTPClient(10 * time.Second)
	var worst time.Duration
	for range 5 {
		t0 := time.Now()
		resp, err := hc.Get(stack.ServerURL + api.PathHealth)
		d := time.Since(t0)
		if err != nil {
			t.Errorf("/healthz during the attack: %v (after %s)", err, d)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz during the attack: %s", resp.Status)
		}
		worst = max(worst, d)
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("/healthz from the laptop during the attack: slowest of 5 %s", worst.Round(time.Millisecond))
	if worst >= time.Second {
		t.Errorf("/healthz took %s during the attack, want under 1s", worst)
	}

	// A real user connects meanwhile.
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	out, took, err := alice.Up(ctxT(t, time.Minute), tok)
	if err != nil {
		t.Errorf("vpn up during the attack: %v\n%s", err, out)
	} else {
		t.Logf("vpn up during the attack: %s", took.Round(time.Millisecond))
		e.reach(t, vpcA4)
	}
	heldDuring := fl.held()
	time.Sleep(8 * time.Second) // past read_header_timeout (5s): the held ones are cut
	heldLate := fl.held()
	fl.Stop()
	close(sampling)
	<-sampled
	t.Logf("attack over %s: %d dials, %d reset before connect returned, %d reset within 1s, %d held over 1s then closed by the gateway; open on the attacker's side (resets not yet read included): %d during vpn up, %d 8s later",
		time.Since(start).Round(time.Second), fl.dials.Load(), fl.fails.Load(), fl.quick.Load(), fl.cut.Load(), heldDuring, heldLate)
	t.Logf("gateway open descriptors: %d before, %d at most during the attack", fdsBefore, fdsMax.Load())
	t.Logf("gateway VmRSS: %.1f MB before, %.1f MB at most during the attack", float64(rssBefore)/(1<<20), float64(rssMax.Load())/(1<<20))
	if rssMax.Load() >= 150<<20 {
		t.Errorf("gateway RSS reached %.1f MB, want under 150 MB", float64(rssMax.Load())/(1<<20))
	}
	// 64 attacker connections, the laptop's few, a little slack for a
	// refused one between accept and close.
	if n := fdsMax.Load() - fdsBefore; n > 64+16 {
		t.Errorf("the gateway held %d more descriptors during the attack, want at most 64 (max_conns_per_source) and a few", n)
	}
	if fl.cut.Load() == 0 {
		t.Error("no held connection was cut by the timeouts")
	}

	// Oversized headers and tokens, from the laptop.
	for _, c := range []struct {
		name, header, value string
		want                int
		msg                 string
	}{
		{"1 MB header", "X-Junk", strings.Repeat("j", 1<<20), http.StatusRequestHeaderFieldsTooLarge, ""},
		{"930 KB token", "Authorization", "Bearer " + strings.Repeat("A", 930<<10), http.StatusRequestHeaderFieldsTooLarge, ""},
		{"10 KB token", "Authorization", "Bearer " + strings.Repeat("A", 10<<10), http.StatusUnauthorized, "the gateway accepts at most 8192"},
	} {
		req, _ := http.NewRequest(http.MethodGet, stack.ServerURL+api.PathNetworks, nil)
		req.Header.Set(c.header, c.value)
		resp, err := hc.Do(req)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.msg) {
			t.Errorf("%s: %s %q, want %d %q", c.name, resp.Status, body, c.want, c.msg)
		} else {
			t.Logf("%s: %s %s", c.name, resp.Status, strings.TrimSpace(string(body)))
		}
	}

	// /metrics: not on the API address, on loopback in gw.
	resp, err := hc.Get(stack.ServerURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "@example.com") {
		t.Errorf("GET /metrics on the API address: %s, e-mail listed %v", resp.Status, strings.Contains(string(body), "@example.com"))
	}
	resp, err = e.GW.HTTPClient(5 * time.Second).Get(gatewayMetricsURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics on metrics_listen: %v", err)
	}
	mbody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(mbody), `user="alice@example.com"`) {
		t.Errorf("GET %s/metrics in gw: %s, alice listed %v", gatewayMetricsURL, resp.Status, strings.Contains(string(mbody), "alice@example.com"))
	}
	if v, ok := metricValue(string(mbody), "clearpath_api_refused_total", `reason="conns_per_source"`); !ok || v < 4000 {
		t.Errorf("clearpath_api_refused_total{conns_per_source} = %v (present %v), want the refused attack", v, ok)
	} else {
		t.Logf("clearpath_api_refused_total{reason=\"conns_per_source\"} = %.0f", v)
	}
}

// registerAs posts a sealed registration for token from node, with an
// optional X-Forwarded-For, and returns the status, Retry-After and body.
func registerAs(t *testing.T, e *env, node *lab.Node, token, xff string) (int, string, string) {
	t.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	must(t, err)
	claims, err := dex.Claims(token)
	must(t, err)
	sub, _ := claims["sub"].(string)
	req := sealFor(t, e.networkKey(t, e.EngIface), api.RegisterClaims{Subject: sub, Network: "eng", DeviceID: "proxied", Hostname: "laptop", OS: "linux"}, key)
	raw, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, stack.ServerURL+api.PathPeers, bytes.NewReader(raw))
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	if xff != "" {
		hr.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := node.HTTPClient(20 * time.Second).Do(hr)
	if err != nil {
		t.Fatalf("POST %s: %v", api.PathPeers, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// trusted_proxies: the laptop (10.1.2.10) is a trusted proxy, host
// (198.51.100.2) is not. Through the laptop, X-Forwarded-For is the source
// for the per-source registration limit and the audit; from host it is
// ignored, so forging it buys an attacker nothing. Per-user limit: 429 with
// Retry-After.
func TestTrustedProxiesAndRegistrationLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stack.WithGatewayConfig(`trusted_proxies: [`+lab.LaptopIP4+`/32]
metrics_token: `+metricsToken+`
api:
  register_per_source: 2/1m
  register_per_user: 3/1m`))
	ctx := ctxT(t, 30*time.Second)
	toks := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		tok, err := e.Dex.Login(ctx, dex.ClientID, u)
		must(t, err)
		toks[u] = tok.IDToken
	}
	expect := func(what string, code int, retry, body string, want int) {
		t.Helper()
		if code != want {
			t.Errorf("%s: %d %s, want %d", what, code, body, want)
			return
		}
		if want == http.StatusTooManyRequests {
			if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 60 || !strings.Contains(body, `"error":"rate_limited"`) {
				t.Errorf("%s: 429 with Retry-After %q, body %s", what, retry, body)
			}
		}
		t.Logf("%s: %d (Retry-After %q)", what, code, retry)
	}
	// Through the trusted proxy: 203.0.113.50 spends its 2, then 429;
	// 203.0.113.51 (another client behind the proxy) still registers.
	// The forged left part of the header does not count.
	c, r, b := registerAs(t, e, e.Laptop, toks["alice"], "203.0.113.50")
	expect("proxied 203.0.113.50 #1", c, r, b, http.StatusOK)
	c, r, b = registerAs(t, e, e.Laptop, toks["bob"], "6.6.6.6, 203.0.113.50")
	expect("proxied 203.0.113.50 #2 (forged left hop)", c, r, b, http.StatusOK)
	c, r, b = registerAs(t, e, e.Laptop, toks["erin"], "7.7.7.7, 203.0.113.50")
	expect("proxied 203.0.113.50 #3", c, r, b, http.StatusTooManyRequests)
	c, r, b = registerAs(t, e, e.Laptop, toks["alice"], "203.0.113.51")
	expect("proxied 203.0.113.51", c, r, b, http.StatusOK)

	// From host, untrusted: the header is ignored; host's own address
	// spends its 2 whatever it claims.
	c, _, b = registerAs(t, e, e.Host, toks["carol"], "203.0.113.60")
	if c != http.StatusForbidden && c != http.StatusOK { // carol is ops: eng is not hers
		t.Errorf("host #1: %d %s", c, b)
	}
	c, r, b = registerAs(t, e, e.Host, toks["bob"], "203.0.113.61")
	expect("host #2 claiming 203.0.113.61", c, r, b, http.StatusOK)
	c, r, b = registerAs(t, e, e.Host, toks["erin"], "203.0.113.62")
	expect("host #3 claiming 203.0.113.62", c, r, b, http.StatusTooManyRequests)

	recs := e.auditLog(t)
	if !hasAudit(recs, "register", "203.0.113.51") && !hasAudit(recs, "rotate", "203.0.113.51") && !hasAudit(recs, "refresh", "203.0.113.51") {
		t.Errorf("no audit entry names the proxied client 203.0.113.51: %+v", recs)
	}
	for _, rec := range recs {
		if strings.Contains(rec.Remote, "203.0.113.6") || strings.Contains(rec.Remote, "6.6.6.6") || strings.Contains(rec.Remote, "7.7.7.7") {
			t.Errorf("audit believed a forged X-Forwarded-For: %+v", rec)
		}
	}
	if !hasAudit(recs, "register", lab.HostPublicIP4) && !hasAudit(recs, "rotate", lab.HostPublicIP4) && !hasAudit(recs, "refresh", lab.HostPublicIP4) {
		t.Errorf("no audit entry names host %s as the remote", lab.HostPublicIP4)
	}

	// Per user: alice has 2 registrations; the 3rd passes, the 4th is
	// 429 (from a fresh proxied source, so only the user bucket is empty).
	c, r, b = registerAs(t, e, e.Laptop, toks["alice"], "203.0.113.70")
	expect("alice #3", c, r, b, http.StatusOK)
	c, r, b = registerAs(t, e, e.Laptop, toks["alice"], "203.0.113.71")
	expect("alice #4 (register_per_user 3/1m)", c, r, b, http.StatusTooManyRequests)
	if !strings.Contains(b, "alice@example.com") {
		t.Errorf("per-user 429 does not name the user: %s", b)
	}

	// metrics_token opens /metrics on the API address, to that token only.
	for _, c := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong-token-0123456789", http.StatusUnauthorized}, {"Bearer " + metricsToken, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, stack.ServerURL+"/metrics", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := e.Laptop.HTTPClient(5 * time.Second).Do(req)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		listed := strings.Contains(string(body), "@example.com")
		if resp.StatusCode != c.want || listed != (c.want == http.StatusOK) {
			t.Errorf("GET /metrics with %q: %s, e-mails listed %v", c.auth, resp.Status, listed)
		}
	}
}

const metricsToken = "lab-metrics-token-0123456789"
