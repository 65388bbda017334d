package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/notify"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// admin runs `vpn-gateway ARGS --config <the lab's>` in gw, as an operator
// on the gateway host would, and returns its output and exit code.
func (e *env) admin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	cmd := e.GW.Command(ctx, append(append([]string{e.Bin.Gateway}, args...), "--config", e.GatewayConfig)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			t.Fatalf("vpn-gateway %s: %v", strings.Join(args, " "), err)
		}
	}
	return buf.String(), code
}

// adminOK is admin that must exit 0.
func (e *env) adminOK(t *testing.T, args ...string) string {
	t.Helper()
	out, code := e.admin(t, args...)
	if code != 0 {
		t.Fatalf("vpn-gateway %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// auditLog reads `vpn-gateway audit --json` with extra flags.
func (e *env) auditLog(t *testing.T, flags ...string) []store.AuditRecord {
	t.Helper()
	out := e.adminOK(t, append([]string{"audit", "--json"}, flags...)...)
	var listed struct {
		Records []store.AuditRecord `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	return listed.Records
}

// hasAudit reports whether recs holds an entry with action whose other
// fields contain each of the wanted strings.
func hasAudit(recs []store.AuditRecord, action string, want ...string) bool {
	for _, r := range recs {
		if r.Action != action {
			continue
		}
		all := strings.Join([]string{r.Actor, r.Subject, r.Email, r.Network, r.PeerID, r.Remote, r.Detail}, " ")
		ok := true
		for _, w := range want {
			if !strings.Contains(all, w) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// onDevice reports whether key is a peer of the gateway interface iface
// (`wg show IFACE peers`).
func (e *env) onDevice(t *testing.T, iface, key string) bool {
	t.Helper()
	peers, err := e.Peers(ctxT(t, 5*time.Second), iface)
	if err != nil {
		t.Fatalf("wg show %s peers: %v", iface, err)
	}
	return slices.Contains(peers, key)
}

// clientKey is the public key of c's tunnel (wg show on the laptop).
func (e *env) clientKey(t *testing.T, c *stack.Client) string {
	t.Helper()
	out, err := e.Laptop.Exec(ctxT(t, 5*time.Second), "wg", "show", c.Iface, "public-key")
	if err != nil {
		t.Fatalf("wg show %s public-key: %v\n%s", c.Iface, err, out)
	}
	return strings.TrimSpace(out)
}

// waitUntil polls cond every 5 ms until it holds or timeout passes, and
// returns how long it took.
func waitUntil(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// registerKey registers a fresh key through the API, as a client would,
// and returns the key and the answer.
func registerKey(t *testing.T, e *env, token, network string) (wgtypes.Key, api.PeerConfig) {
	t.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key, registerThis(t, e, token, network, key)
}

// registerThis registers key (again) through the API, sealed with key as
// the client does; each key is its own device ("ghost-<key>").
func registerThis(t *testing.T, e *env, token, network string, key wgtypes.Key) api.PeerConfig {
	t.Helper()
	c, err := gwapi.New(stack.ServerURL)
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithHTTPClient(e.Laptop.HTTPClient(10 * time.Second))
	id := "ghost-" + strings.NewReplacer("+", "", "/", "", "=", "").Replace(key.PublicKey().String())[:12]
	reg, err := c.Register(ctxT(t, 10*time.Second), token, network, gwapi.Device{Key: key, ID: id, Hostname: "ghost", OS: "linux"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return *reg.Config
}

// hook is a webhook receiver listening on loopback inside gw, where the
// gateway runs. It refuses the first attempt of every event with 503 so
// that each delivery proves the retry.
type hook struct {
	URL string
	mu  sync.Mutex
	got []hookDelivery
}

type hookDelivery struct {
	At      time.Time
	Attempt int
	Event   notify.Event
	SigOK   bool
}

const hookSecret = "lab-webhook-secret"

func startHook(t *testing.T, gw *lab.Node) *hook {
	t.Helper()
	ln, err := gw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hook{URL: "http://" + ln.Addr().String() + "/hook"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var ev notify.Event
		json.Unmarshal(raw, &ev)
		n, _ := strconv.Atoi(r.Header.Get("X-ClearPath-Attempt"))
		h.mu.Lock()
		h.got = append(h.got, hookDelivery{At: time.Now(), Attempt: n, Event: ev, SigOK: r.Header.Get("X-ClearPath-Signature") == notify.Sign(hookSecret, raw)})
		h.mu.Unlock()
		if n <= 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

// accepted returns the deliveries the receiver accepted (attempt >= 2).
func (h *hook) accepted() []hookDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookDelivery
	for _, d := range h.got {
		if d.Attempt >= 2 {
			out = append(out, d)
		}
	}
	return out
}

// pingLoop sends ICMP echo requests from a node every interval and records
// which were answered.
type pingLoop struct {
	dst      netip.Addr
	interval time.Duration
	mu       sync.Mutex
	sent     map[int]time.Time
	replied  map[int]time.Time
	stop     chan struct{}
	done     chan struct{}
}

func startPingLoop(t *testing.T, n *lab.Node, dst string, interval time.Duration) *pingLoop {
	t.Helper()
	p := &pingLoop{dst: netip.MustParseAddr(dst), interval: interval, sent: map[int]time.Time{}, replied: map[int]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if p.dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var c *icmp.PacketConn
	if err := n.Do(func() (err error) { c, err = icmp.ListenPacket(network, laddr); return err }); err != nil {
		t.Fatal(err)
	}
	id := (os.Getpid() + int(time.Now().UnixNano())) & 0xffff
	go func() {
		buf := make([]byte, 1500)
		for {
			nr, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := icmp.ParseMessage(proto, buf[:nr])
			if err != nil {
				continue
			}
			src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if e, ok := m.Body.(*icmp.Echo); ok && m.Type == replyType && e.ID == id && src.Unmap() == p.dst {
				p.mu.Lock()
				if _, dup := p.replied[e.Seq]; !dup {
					p.replied[e.Seq] = time.Now()
				}
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		defer close(p.done)
		defer c.Close()
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for seq := 1; ; seq++ {
			msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("clearpath-ops")}}
			b, _ := msg.Marshal(nil)
			p.mu.Lock()
			p.sent[seq&0xffff] = time.Now()
			p.mu.Unlock()
			c.WriteTo(b, &net.IPAddr{IP: p.dst.AsSlice()})
			select {
			case <-p.stop:
				time.Sleep(500 * time.Millisecond) // late replies
				return
			case <-tk.C:
			}
		}
	}()
	return p
}

// Stop ends the loop and returns how many were sent and lost.
func (p *pingLoop) Stop() (sent, lost int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq := range p.sent {
		if _, ok := p.replied[seq]; !ok {
			lost++
		}
	}
	return len(p.sent), lost
}

// lastReply is when the latest reply arrived.
func (p *pingLoop) lastReply() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, t := range p.replied {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// repliedSince reports whether a reply to a request sent after t arrived.
func (p *pingLoop) repliedSince(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq, s := range p.sent {
		if s.After(t) {
			if _, ok := p.replied[seq]; ok {
				return true
			}
		}
	}
	return false
}

// metricValue finds a sample of the Prometheus text exposition.
func metricValue(text, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// scrape GETs path from inside gw: /metrics from metrics_listen (loopback,
// where it is private by default), anything else from the API address.
func (e *env) scrape(t *testing.T, path string) (int, string) {
	t.Helper()
	base := stack.ServerURL
	if path == "/metrics" {
		base = stack.MetricsURL
	}
	resp, err := e.GW.HTTPClient(5 * time.Second).Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
