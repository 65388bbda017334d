package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testissuer"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testpg"
)

// The scale tests give the gateway tokens from a test issuer (a real OIDC
// issuer over HTTP, in the idp namespace) rather than from Dex logins.
const (
	issuerURL   = "http://" + lab.IDPIP4 + ":5600"
	scaleClient = "clearpath"
	scalePool4  = "100.64.0.0/20" // 4093 addresses for clients
	scalePool6  = "fd00:64::/64"
)

type scaleLab struct {
	*lab.Reference
	iss *testissuer.Issuer
}

func newScaleLab(t testing.TB) *scaleLab {
	t.Helper()
	lab.SkipUnlessRoot(t)
	ref := lab.ReferenceT(t, lab.Options{})
	ln, err := ref.IDP.Listen("tcp", lab.IDPIP4+":5600")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := testissuer.Serve(ln, issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })
	return &scaleLab{Reference: ref, iss: iss}
}

// gwSpec is one gateway process of the scale lab, with one network "eng".
type gwSpec struct {
	Name     string
	Node     *lab.Node
	Listen   string // ip:port of the API
	Endpoint string
	Iface    string
	Port     int
	Table    int
	Store    string
	KeyTTL   string
	Pool4    string
	Extra    string // appended to the configuration (top-level keys)
}

func (g gwSpec) URL() string { return "http://" + g.Listen }

var scaleGatewayTmpl = template.Must(template.New("gw").Parse(`listen: "{{.Listen}}"
endpoint: {{.Endpoint}}
oidc:
  issuer: ` + issuerURL + `
  client_id: ` + scaleClient + `
  allow_http: true
store: "{{.Store}}"
state_dir: {{.StateDir}}
key_ttl: {{.KeyTTL}}
networks:
  - name: eng
    group: engineering
    interface: {{.Iface}}
    listen_port: {{.Port}}
    table: {{.Table}}
    pool: [{{.Pool4}}, "` + scalePool6 + `"]
    allow: [` + lab.VPCA4 + `, "` + lab.VPCA6 + `"]
# Thousands of users from the one laptop address: the per-source limits
# guard an API on the internet, not this load test.
api:
  max_conns_per_source: 4096
  register_per_source: "off"
{{.Extra}}`))

// gateway is a running gateway process.
type gateway struct {
	spec gwSpec
	proc *lab.Proc
	cfg  string
}

func (s *scaleLab) startGateway(t testing.TB, spec gwSpec) *gateway {
	t.Helper()
	if spec.KeyTTL == "" {
		spec.KeyTTL = "720h"
	}
	if spec.Pool4 == "" {
		spec.Pool4 = scalePool4
	}
	g := &gateway{spec: spec, cfg: filepath.Join(s.Dir, spec.Name+".yaml")}
	f, err := os.Create(g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = scaleGatewayTmpl.Execute(f, map[string]any{"Listen": spec.Listen, "Endpoint": spec.Endpoint, "Store": spec.Store,
		"StateDir": filepath.Join(s.Dir, spec.Name+"-state"), "KeyTTL": spec.KeyTTL, "Iface": spec.Iface, "Port": spec.Port,
		"Table": spec.Table, "Pool4": spec.Pool4, "Extra": spec.Extra})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	g.start(t, s)
	return g
}

func (g *gateway) start(t testing.TB, s *scaleLab) {
	t.Helper()
	p, err := g.spec.Node.Start(g.spec.Name, bins.Gateway, "serve", "--config", g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.proc = p
	hc := s.Laptop.HTTPClient(time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if done, err := p.Exited(); done {
			t.Fatalf("gateway %s exited while starting (%v):\n%s", g.spec.Name, err, p.Log())
		}
		// healthz answers once the issuer is discovered.
		if resp, err := hc.Get(g.spec.URL() + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gateway %s not ready after 30s:\n%s", g.spec.Name, p.Log())
}

func (g *gateway) stop(t testing.TB) {
	t.Helper()
	if err := g.proc.Stop(20 * time.Second); err != nil {
		t.Errorf("stop gateway %s: %v", g.spec.Name, err)
	}
}

// device is one simulated client device.
type device struct {
	user  string
	id    string
	key   wgtypes.Key
	token string
	reg   *gwapi.Registration
	err   error
	took  time.Duration
}

// newDevices makes n devices of n users of engineering (user-<offset+i>),
// with tokens from the test issuer.
func (s *scaleLab) newDevices(t testing.TB, offset, n int) []*device {
	t.Helper()
	out := make([]*device, n)
	for i := range out {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		user := fmt.Sprintf("user-%05d", offset+i)
		tok, err := s.iss.Token(scaleClient, user, []string{"engineering"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &device{user: user, id: "dev-" + user, key: k, token: tok}
	}
	return out
}

// registrar dials from the laptop with as many connections as requests
// in flight, so the gateway really sees them at once.
func (s *scaleLab) registrar(url string) *gwapi.Client {
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DialContext: s.Laptop.DialContext, MaxIdleConnsPerHost: 1024}}
	c, _ := gwapi.New(url)
	return c.WithHTTPClient(hc)
}

// registerAll registers every device through its gateway's client, at
// most inFlight at a time (0: all at once).
func registerAll(clients func(i int) *gwapi.Client, devs []*device, inFlight int) time.Duration {
	if inFlight <= 0 {
		inFlight = len(devs)
	}
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i, d := range devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			d.reg, d.err = clients(i).Register(ctx, d.token, "", gwapi.Device{Key: d.key, ID: d.id, Hostname: d.user, OS: "linux"})
			d.took = time.Since(t0)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// wgPeer is one peer line of `wg show <iface> dump`.
type wgPeer struct {
	psk        string
	allowedIPs string
}

func wgDump(t testing.TB, node *lab.Node, iface string) map[string]wgPeer {
	t.Helper()
	out, err := node.Exec(context.Background(), "wg", "show", iface, "dump")
	if err != nil {
		t.Fatalf("wg show %s dump: %v\n%s", iface, err, out)
	}
	peers := map[string]wgPeer{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, line := range lines[1:] { // the first line is the interface
		f := strings.Split(line, "\t")
		if len(f) < 4 {
			t.Fatalf("wg show dump line %q", line)
		}
		peers[f[0]] = wgPeer{psk: f[1], allowedIPs: f[3]}
	}
	return peers
}

// checkRegistrations checks that every device registered, all addresses
// are distinct and in the pools, and returns them keyed by public key as
// `wg show` would list them.
func checkRegistrations(t *testing.T, devs []*device) map[string]wgPeer {
	t.Helper()
	pool4, pool6 := netip.MustParsePrefix(scalePool4), netip.MustParsePrefix(scalePool6)
	owner := map[string]string{}
	want := map[string]wgPeer{}
	var slowest time.Duration
	failed := 0
	for _, d := range devs {
		if d.err != nil {
			if failed++; failed <= 5 {
				t.Errorf("%s: %v", d.user, d.err)
			}
			continue
		}
		slowest = max(slowest, d.took)
		pc := d.reg.Config
		if len(pc.Addresses) != 2 {
			t.Fatalf("%s got addresses %v", d.user, pc.Addresses)
		}
		for i, a := range pc.Addresses {
			p := netip.MustParsePrefix(a)
			if pool := []netip.Prefix{pool4, pool6}[i]; !pool.Contains(p.Addr()) || p.Bits() != p.Addr().BitLen() {
				t.Errorf("%s got %s, not a host address in %s", d.user, a, pool)
			}
			if o, dup := owner[a]; dup {
				t.Errorf("%s and %s were both given %s", o, d.user, a)
			}
			owner[a] = d.user
		}
		want[d.key.PublicKey().String()] = wgPeer{psk: d.reg.PresharedKey.String(), allowedIPs: strings.Join(pc.Addresses, ",")}
	}
	if failed > 0 {
		t.Fatalf("%d of %d registrations failed", failed, len(devs))
	}
	t.Logf("%d registrations, %d distinct addresses; slowest %v", len(devs), len(owner), slowest.Round(time.Millisecond))
	return want
}

// samePeers compares the device's peers with the registrations.
func samePeers(t *testing.T, when string, got, want map[string]wgPeer) {
	t.Helper()
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if bad++; bad <= 5 {
				t.Errorf("%s: peer %s is %+v on the device, want %+v", when, k, g, w)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: the device has %d peers, want %d", when, len(got), len(want))
	}
	if bad == 0 && len(got) == len(want) {
		t.Logf("%s: all %d peers on the device with their addresses and session keys", when, len(got))
	}
}

// A thousand users register at once: a thousand distinct addresses and no
// error; every peer is on the WireGuard device (wg show) with its address
// and session key, and again after a gateway restart; re-registering keeps
// the address. On SQLite and on PostgreSQL.
func TestThousandConcurrentRegistrations(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			s := newScaleLab(t)
			store := filepath.Join(s.Dir, "gateway.db")
			if backend == "postgres" {
				store = testpg.StartServer(t).SocketDSN
			}
			gw := s.startGateway(t, gwSpec{Name: "gateway", Node: s.GW, Listen: lab.GWPublicIP4 + ":8080", Endpoint: lab.GWPublicIP4,
				Iface: s.Prefix + "eng", Port: lab.EngPort, Table: 1100, Store: store})
			devs := s.newDevices(t, 0, 1000)
			c := s.registrar(gw.spec.URL())
			took := registerAll(func(int) *gwapi.Client { return c }, devs, 0)
			t.Logf("%s: 1000 concurrent registrations in %v (%.0f/s)", backend, took.Round(time.Millisecond), 1000/took.Seconds())
			want := checkRegistrations(t, devs)
			samePeers(t, "after registering", wgDump(t, s.GW, gw.spec.Iface), want)

			gw.stop(t)
			gw.start(t, s)
			// Lazy peers: a restarted device holds none until their
			// handshakes arrive (TestLazyPeers); re-registering below puts
			// them back.
			if n := len(wgDump(t, s.GW, gw.spec.Iface)); n != 0 {
				t.Errorf("after a gateway restart: %d peers on the device, want 0 (lazy)", n)
			}

			// Re-registration (a renewal) keeps the address, changes the
			// session key.
			again := make([]*device, 0, 50)
			for _, i := range rand.Perm(len(devs))[:50] {
				d := *devs[i]
				again = append(again, &d)
			}
			registerAll(func(int) *gwapi.Client { return c }, again, 0)
			for _, d := range again {
				old := want[d.key.PublicKey().String()]
				if d.err != nil {
					t.Fatalf("re-registering %s: %v", d.user, d.err)
				}
				if got := strings.Join(d.reg.Config.Addresses, ","); got != old.allowedIPs {
					t.Errorf("%s re-registered got %s, had %s", d.user, got, old.allowedIPs)
				}
				if d.reg.PresharedKey.String() == old.psk {
					t.Errorf("%s re-registered kept its session key", d.user)
				}
			}
		})
	}
}

// Two gateway processes share one PostgreSQL and take registrations at the
// same time: no address is ever handed out twice, and both serve the
// network with the same key.
func TestTwoGatewaysShareOnePostgres(t *testing.T) {
	s := newScaleLab(t)
	pg := testpg.StartServer(t)
	a := s.startGateway(t, gwSpec{Name: "gateway-a", Node: s.GW, Listen: lab.GWPublicIP4 + ":8080", Endpoint: lab.GWPublicIP4,
		Iface: s.Prefix + "ga", Port: lab.EngPort, Table: 1100, Store: pg.SocketDSN})
	// The second one runs on host: another machine on the public segment.
	b := s.startGateway(t, gwSpec{Name: "gateway-b", Node: s.Host, Listen: lab.HostPublicIP4 + ":8081", Endpoint: lab.HostPublicIP4,
		Iface: s.Prefix + "gb", Port: 51830, Table: 1200, Store: pg.SocketDSN})
	devs := s.newDevices(t, 0, 1000)
	ca, cb := s.registrar(a.spec.URL()), s.registrar(b.spec.URL())
	took := registerAll(func(i int) *gwapi.Client {
		if i%2 == 0 {
			return ca
		}
		return cb
	}, devs, 0)
	t.Logf("1000 registrations split over two gateways in %v (%.0f/s)", took.Round(time.Millisecond), 1000/took.Seconds())
	want := checkRegistrations(t, devs)
	onA, onB := wgDump(t, s.GW, a.spec.Iface), wgDump(t, s.Host, b.spec.Iface)
	for i, d := range devs {
		on := onA
		if i%2 == 1 {
			on = onB
		}
		if p, ok := on[d.key.PublicKey().String()]; !ok || p != want[d.key.PublicKey().String()] {
			t.Fatalf("%s is not on the gateway it registered with as %v", d.user, want[d.key.PublicKey().String()])
		}
	}
	if ka, kb := wgPublicKey(t, s.GW, a.spec.Iface), wgPublicKey(t, s.Host, b.spec.Iface); ka != kb {
		t.Errorf("the gateways serve network eng with different keys")
	}
	// Each gateway follows the shared store (lifecycle store_poll): soon
	// both serve every peer, with the same address and session key, so a
	// client can use either. Their devices hold the active ones only (lazy
	// peers); every registered peer shows in each gateway's metrics.
	scrapePeers := func(node *lab.Node) float64 {
		resp, err := node.HTTPClient(5 * time.Second).Get("http://127.0.0.1:9587/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		v, _ := metricValue(string(body), "clearpath_peers", `network="eng"`)
		return v
	}
	start := time.Now()
	for {
		na, nb := scrapePeers(s.GW), scrapePeers(s.Host)
		if na == float64(len(want)) && nb == float64(len(want)) {
			t.Logf("both gateways serve all %d peers %v after the registrations", len(want), time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("after 15s gateway a has %v peers and b %v (want %d each, as in the store)", na, nb, len(want))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// A client of a's registers goes to b: b serves it at its first
	// handshake.
	d := devs[0]
	cl := startWGClient(t, s.Laptop, d.key, &d.reg.PresharedKey, d.reg.Config.Gateway.PublicKey, netip.MustParsePrefix(d.reg.Config.Addresses[0]).Addr())
	cl.endpoint(t, net.JoinHostPort(lab.HostPublicIP4, "51830"))
	if took, ok := cl.handshake(t, time.Time{}, 15*time.Second); !ok {
		t.Fatalf("gateway b did not answer the handshake of a peer registered with a")
	} else {
		t.Logf("gateway b answered a's peer's first handshake after %v", took.Round(time.Millisecond))
	}
}
