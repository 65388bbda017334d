package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/wgdev"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// CPUs each end is pinned to (with its iperf3).
const (
	clientCPU = 0
	serverCPU = 1
)

// The one veth pair every tunnel crosses: cli 198.51.100.2 - srv 198.51.100.1.
const (
	srvVeth4 = lab.GWPublicIP4
	cliVeth4 = lab.HostPublicIP4
)

// tunnel is one way of carrying packets from cli to srv.
type tunnel interface {
	// Name is the row label in the report.
	Name() string
	// Start starts the server end (untimed).
	Start(ctx context.Context) error
	// Up starts the client end and returns the time from starting the
	// client process to the first reply through the tunnel.
	Up(ctx context.Context) (time.Duration, error)
	// Target is the server end's address through the tunnel.
	Target() string
	// Device is the client's interface carrying the traffic.
	Device() string
	// Pids are the tunnel processes of the client and server ends (0: none).
	Pids() (client, server int)
	// Stop stops both ends.
	Stop(ctx context.Context) error
}

// env is the lab every tunnel runs in.
type env struct {
	lab           *lab.Lab
	cli, srv, idp *lab.Node
	cliVethName   string
	dir           string
	bin           binaries
}

type binaries struct {
	VPN, Gateway, WireGuardGo, Dex, OpenVPN string
}

// ---- bare veth ----

type bare struct{ e *env }

func (b *bare) Name() string                              { return bareName }
func (b *bare) Start(context.Context) error               { return nil }
func (b *bare) Up(context.Context) (time.Duration, error) { return 0, nil }
func (b *bare) Target() string                            { return srvVeth4 }
func (b *bare) Device() string                            { return b.e.cliVethName }
func (b *bare) Pids() (int, int)                          { return 0, 0 }
func (b *bare) Stop(context.Context) error                { return nil }

// ---- reference wireguard-go ----

// wgGo is the wireguard-go program of the version go.mod pins, one per end,
// configured with `wg setconf` and `ip`.
type wgGo struct {
	e                  *env
	label              string
	v                  wgVariant
	cliKey, srvKey     wgtypes.Key
	cliIface, srvIface string
	cliProc, srvProc   *lab.Proc
}

// wgVariant sets the reference up like ClearPath in one respect.
type wgVariant struct {
	// quick: the client end as wg-quick sets up a full tunnel: the
	// socket marked, the tunnel's route in a table of its own, `ip rule
	// not fwmark M table T` and `ip rule table main
	// suppress_prefixlength 0`, the address a host address (so the
	// packets take the rules, not a connected route in main, as
	// ClearPath's do). Not wg-quick's nftables rules: ClearPath's client
	// has none either; nor its src_valid_mark=1, which changes nothing
	// while rp_filter is 0, as it is in the lab's namespaces.
	quick bool
	// clientEnv is extra environment of the client end's process.
	clientEnv []string
}

func (v wgVariant) describe() string {
	var parts []string
	if v.quick {
		parts = append(parts, fmt.Sprintf("client: fwmark %d, table %d, ip rule not fwmark + suppress_prefixlength 0", wgQuickTable, wgQuickTable))
	}
	if len(v.clientEnv) > 0 {
		parts = append(parts, "client: "+strings.Join(v.clientEnv, " "))
	}
	return strings.Join(parts, "; ")
}

const (
	wgPort  = 51830
	wgSrvIP = "10.66.0.1"
	wgCliIP = "10.66.0.2"
)

// wgQuickTable is the table and the mark wg-quick picks (its listen port).
const wgQuickTable = 51820

func newWgGo(e *env, slot, label string, v wgVariant) (*wgGo, error) {
	w := &wgGo{e: e, label: label, v: v, cliIface: e.lab.Prefix + "w" + slot + "c", srvIface: e.lab.Prefix + "w" + slot + "s"}
	if len(w.cliIface) > 15 {
		return nil, fmt.Errorf("interface name %q too long", w.cliIface)
	}
	var err error
	if w.cliKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		return nil, err
	}
	if w.srvKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *wgGo) Name() string     { return w.label }
func (w *wgGo) Target() string   { return wgSrvIP }
func (w *wgGo) Device() string   { return w.cliIface }
func (w *wgGo) Pids() (int, int) { return pid(w.cliProc), pid(w.srvProc) }

func (w *wgGo) Start(ctx context.Context) error {
	conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = %d\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n",
		w.srvKey, wgPort, w.cliKey.PublicKey(), wgCliIP)
	p, err := w.startEnd(ctx, w.e.srv, serverCPU, w.srvIface, conf, wgSrvIP+"/24", nil)
	w.srvProc = p
	return err
}

func (w *wgGo) Up(ctx context.Context) (time.Duration, error) {
	mark, addr := "", wgCliIP+"/24"
	if w.v.quick {
		mark, addr = fmt.Sprintf("FwMark = %d\n", wgQuickTable), wgCliIP+"/32"
	}
	conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\n%s\n[Peer]\nPublicKey = %s\nEndpoint = %s:%d\nAllowedIPs = 10.66.0.0/24\n",
		w.cliKey, mark, w.srvKey.PublicKey(), srvVeth4, wgPort)
	start := time.Now()
	p, err := w.startEnd(ctx, w.e.cli, clientCPU, w.cliIface, conf, addr, w.v.clientEnv)
	w.cliProc = p
	if err != nil {
		return 0, err
	}
	if w.v.quick {
		// wg-quick's add_default, in its order.
		t := strconv.Itoa(wgQuickTable)
		for _, argv := range [][]string{
			{"ip", "-4", "rule", "add", "not", "fwmark", t, "table", t},
			{"ip", "-4", "rule", "add", "table", "main", "suppress_prefixlength", "0"},
			{"ip", "-4", "route", "add", "10.66.0.0/24", "dev", w.cliIface, "table", t},
		} {
			if _, err := w.e.cli.Exec(ctx, argv...); err != nil {
				return 0, err
			}
		}
	}
	if err := w.e.cli.FirstReply(ctx, wgSrvIP, 2*time.Millisecond); err != nil {
		return 0, fmt.Errorf("wireguard-go: %w\n%s", err, p.Log())
	}
	took := time.Since(start)
	if w.v.quick {
		// Untimed: the row measures nothing unless the socket is marked.
		if out, err := w.e.cli.Exec(ctx, "wg", "show", w.cliIface, "fwmark"); err != nil || strings.TrimSpace(out) != fmt.Sprintf("%#x", wgQuickTable) {
			return 0, fmt.Errorf("wg-quick row: fwmark of %s is %q (%v), want %#x", w.cliIface, strings.TrimSpace(out), err, wgQuickTable)
		}
	}
	return took, nil
}

// startEnd runs wireguard-go in the foreground on iface, pinned to cpu,
// waits for its UAPI socket, applies conf and brings the link up with addr.
func (w *wgGo) startEnd(ctx context.Context, n *lab.Node, cpu int, iface, conf, addr string, env []string) (*lab.Proc, error) {
	return n.StartWireGuardGo(ctx, lab.WireGuardGo{Argv: pinned(cpu, w.e.bin.WireGuardGo, "-f", iface), Env: env,
		Iface: iface, Conf: conf, Dir: w.e.dir, Addr: addr, Listening: wgdev.InUse})
}

func (w *wgGo) Stop(ctx context.Context) error {
	stop(w.cliProc, w.srvProc)
	w.cliProc, w.srvProc = nil, nil
	if !w.v.quick {
		return nil
	}
	// The route went with the link; the rules stay unless removed, and
	// would tax every row after this one.
	t := strconv.Itoa(wgQuickTable)
	var errs []error
	for _, argv := range [][]string{
		{"ip", "-4", "rule", "del", "not", "fwmark", t, "table", t},
		{"ip", "-4", "rule", "del", "table", "main", "suppress_prefixlength", "0"},
	} {
		if out, err := w.e.cli.Exec(ctx, argv...); err != nil && !strings.Contains(out, "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ---- OpenVPN ----

// openVPN is OpenVPN 2.6 in point-to-point TLS mode over UDP with a test PKI
// made at bench time; the data channel cipher is what it negotiates by
// default (AES-256-GCM).
type openVPN struct {
	e                  *env
	pki                string
	cliIface, srvIface string
	cliProc, srvProc   *lab.Proc
	// Cipher is what the client's log says the data channel uses.
	Cipher string
}

const (
	ovpnPort  = 1194
	ovpnSrvIP = "10.67.0.1"
	ovpnCliIP = "10.67.0.2"
)

func newOpenVPN(ctx context.Context, e *env) (*openVPN, error) {
	o := &openVPN{e: e, pki: filepath.Join(e.dir, "pki"), cliIface: e.lab.Prefix + "ovc", srvIface: e.lab.Prefix + "ovs"}
	if err := makePKI(ctx, o.pki); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *openVPN) Name() string     { return "OpenVPN 2.6" }
func (o *openVPN) Target() string   { return ovpnSrvIP }
func (o *openVPN) Device() string   { return o.cliIface }
func (o *openVPN) Pids() (int, int) { return pid(o.cliProc), pid(o.srvProc) }

func (o *openVPN) common(iface string) []string {
	return []string{o.e.bin.OpenVPN, "--dev", iface, "--dev-type", "tun", "--proto", "udp",
		"--ca", filepath.Join(o.pki, "ca.crt"), "--verb", "3", "--disable-dco"}
}

func (o *openVPN) Start(ctx context.Context) error {
	args := append(o.common(o.srvIface), "--tls-server", "--dh", "none",
		"--local", srvVeth4, "--lport", strconv.Itoa(ovpnPort),
		"--cert", filepath.Join(o.pki, "server.crt"), "--key", filepath.Join(o.pki, "server.key"),
		"--ifconfig", ovpnSrvIP, ovpnCliIP)
	p, err := o.e.srv.Start("openvpn-server", pinned(serverCPU, args...)...)
	o.srvProc = p
	if err != nil {
		return err
	}
	return waitLog(ctx, p, "link local (bound)", 10*time.Second)
}

func (o *openVPN) Up(ctx context.Context) (time.Duration, error) {
	args := append(o.common(o.cliIface), "--tls-client", "--remote-cert-tls", "server", "--nobind",
		"--remote", srvVeth4, strconv.Itoa(ovpnPort),
		"--cert", filepath.Join(o.pki, "client.crt"), "--key", filepath.Join(o.pki, "client.key"),
		"--ifconfig", ovpnCliIP, ovpnSrvIP)
	start := time.Now()
	p, err := o.e.cli.Start("openvpn-client", pinned(clientCPU, args...)...)
	o.cliProc = p
	if err != nil {
		return 0, err
	}
	if err := o.e.cli.FirstReply(ctx, ovpnSrvIP, 2*time.Millisecond); err != nil {
		return 0, fmt.Errorf("openvpn: %w\n%s", err, p.Log())
	}
	took := time.Since(start)
	if err := waitLog(ctx, p, "Data Channel: cipher", 5*time.Second); err == nil {
		for _, line := range strings.Split(p.Log(), "\n") {
			if _, c, ok := strings.Cut(line, "Data Channel: cipher '"); ok {
				o.Cipher, _, _ = strings.Cut(c, "'")
			}
		}
	}
	return took, nil
}

func (o *openVPN) Stop(context.Context) error {
	stop(o.cliProc, o.srvProc)
	o.cliProc, o.srvProc = nil, nil
	return nil
}

// makePKI writes a throwaway CA and a server and a client certificate
// (ECDSA P-256) into dir with openssl.
func makePKI(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ext := filepath.Join(dir, "ext.cnf")
	if err := os.WriteFile(ext, []byte("[server]\nextendedKeyUsage = serverAuth\nkeyUsage = digitalSignature, keyAgreement\n[client]\nextendedKeyUsage = clientAuth\nkeyUsage = digitalSignature, keyAgreement\n"), 0o600); err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	steps := [][]string{
		{"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
			"-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=clearpath-bench-ca"},
	}
	for _, who := range []string{"server", "client"} {
		steps = append(steps,
			[]string{"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
				"-keyout", p(who + ".key"), "-out", p(who + ".csr"), "-subj", "/CN=" + who},
			[]string{"openssl", "x509", "-req", "-in", p(who + ".csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
				"-CAcreateserial", "-days", "2", "-extfile", ext, "-extensions", who, "-out", p(who + ".crt")})
	}
	for _, argv := range steps {
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("test PKI: %s: %w\n%s", strings.Join(argv, " "), err, out)
		}
	}
	return nil
}

// ---- ClearPath ----

// ours is `vpn up` (cached login) against `vpn-gateway serve`, with Dex on
// a third namespace behind the gateway for the gateway's token checks.
type ours struct {
	e         *env
	label     string
	v         oursVariant
	dex       *dex.Server
	gwConfig  string
	gwProc    *lab.Proc
	gwName    string // the gateway process's (and log file's) name, one per row
	stateDir  string
	configDir string
	iface     string
	agentPid  int
	// agentSetup is the agent's share of the last Up (ms).
	agentSetup float64
}

// oursVariant is ClearPath with one thing changed (the ablation rows).
type oursVariant struct {
	// env is extra environment of both ends; clientEnv of the client's
	// processes only (`vpn`, and the agent it starts).
	env, clientEnv []string
	// noIPv6: the gateway's pool is IPv4 only, so the tunnel carries
	// no IPv6 (no address, no route, no rule of that family).
	noIPv6 bool
	// service starts the agent before timing `vpn up`, as when a system
	// service runs it.
	service bool
	// noRules and noMark set the agent's bench knobs (client/agent
	// benchknobs.go): routes in main and no policy rule; an unmarked
	// WireGuard socket.
	noRules, noMark bool
	// noFilter turns the gateway's eBPF flow filter off (flows.filter:
	// "off"): the reference has no per-packet filter on its server end.
	noFilter bool
}

// client is the extra environment of the client's processes.
func (v oursVariant) client() []string {
	env := append(slices.Clone(v.env), v.clientEnv...)
	if v.noRules {
		env = append(env, "CLEARPATH_BENCH_NO_RULES=1")
	}
	if v.noMark {
		env = append(env, "CLEARPATH_BENCH_NO_FWMARK=1")
	}
	return env
}

func (v oursVariant) describe() string {
	var parts []string
	if len(v.env) > 0 {
		parts = append(parts, "both ends: "+strings.Join(v.env, " "))
	}
	if c := v.client()[len(v.env):]; len(c) > 0 {
		parts = append(parts, "client: "+strings.Join(c, " "))
	}
	if v.noIPv6 {
		parts = append(parts, "gateway pool IPv4 only")
	}
	if v.service {
		parts = append(parts, "agent started before vpn up")
	}
	if v.noFilter {
		parts = append(parts, "gateway eBPF filter off")
	}
	return strings.Join(parts, "; ")
}

func (o *ours) clientEnv() []string { return o.v.client() }

// verify checks that the tunnel is set up as the variant says: a row that
// does not switch its suspect off would measure nothing (and the default
// row must have what the ablation rows take away).
func (o *ours) verify(ctx context.Context) error {
	mark, err := o.e.cli.Exec(ctx, "wg", "show", o.iface, "fwmark")
	if err != nil {
		return err
	}
	rules, err := o.e.cli.Exec(ctx, "ip", "-4", "rule", "show")
	if err != nil {
		return err
	}
	v6, err := o.e.cli.Exec(ctx, "ip", "-6", "addr", "show", "dev", o.iface, "scope", "global")
	if err != nil {
		return err
	}
	env := o.v.client()
	noMark := slices.Contains(env, "CLEARPATH_BENCH_NO_FWMARK=1")
	noRules := slices.Contains(env, "CLEARPATH_BENCH_NO_RULES=1")
	var bad []string
	if got, want := strings.TrimSpace(mark), fmt.Sprintf("%#x", routes.FwMark); noMark != (got == "off") || (!noMark && got != want) {
		bad = append(bad, fmt.Sprintf("WireGuard fwmark %q (unmarked row: %v)", got, noMark))
	}
	if has := strings.Contains(rules, fmt.Sprintf("lookup %d", routes.Table)); has == noRules {
		bad = append(bad, fmt.Sprintf("rule to table %d present: %v (no-rules row: %v)", routes.Table, has, noRules))
	}
	if has := strings.Contains(v6, "inet6"); has == o.v.noIPv6 {
		bad = append(bad, fmt.Sprintf("IPv6 address on %s: %v (IPv4-only row: %v)", o.iface, has, o.v.noIPv6))
	}
	// The gateway logs each interface it attaches the filter to.
	attached := o.gwProc != nil && strings.Contains(o.gwProc.Log(), "flow filter attached")
	if attached == o.v.noFilter {
		bad = append(bad, fmt.Sprintf("eBPF filter attached on the gateway: %v (no-filter row: %v)", attached, o.v.noFilter))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s is not set up as its row says: %s\n%s", o.label, strings.Join(bad, "; "), rules)
	}
	return nil
}

const (
	oursGWIP = "100.64.0.1"
	oursURL  = "http://" + srvVeth4 + ":8080"
)

// newOurs prepares Dex, the gateway's configuration and a logged-in user's
// token cache (the state `vpn login` leaves).
func newOurs(ctx context.Context, e *env, d *dex.Server, label, slot string, v oursVariant) (*ours, error) {
	o := &ours{e: e, label: label, v: v, dex: d,
		stateDir: filepath.Join(e.dir, "client-"+slot), configDir: filepath.Join(e.dir, "config-"+slot),
		iface: e.lab.Prefix + "c" + slot}
	if len(o.iface) > 15 || len(e.lab.Prefix+"g"+slot) > 15 {
		return nil, fmt.Errorf("interface name %q too long", o.iface)
	}
	pool := `[100.64.0.0/24, "fd00:64::/64"]`
	if v.noIPv6 {
		pool = `[100.64.0.0/24]`
	}
	gwDir := filepath.Join(e.dir, "gateway-"+slot)
	if err := os.MkdirAll(gwDir, 0o700); err != nil {
		return nil, err
	}
	o.gwConfig = filepath.Join(gwDir, "gateway.yaml")
	o.gwName = "gateway-" + slot
	filterConf := ""
	if v.noFilter {
		filterConf = "flows:\n  filter: \"off\"\n"
	}
	cfg := fmt.Sprintf(`listen: "%s:8080"
endpoint: %s
oidc:
  issuer: %s
  client_id: %s
  audience: %s
  groups_claim: groups
  allow_http: true
store: %s
state_dir: %s
networks:
  - name: eng
    group: engineering
    interface: %s
    listen_port: 51820
    pool: %s
    allow: [10.10.0.0/16]
    local_ports: [tcp/5201]
%s`, srvVeth4, srvVeth4, dex.Issuer, dex.ClientID, dex.ClientID,
		filepath.Join(gwDir, "gateway.db"), filepath.Join(gwDir, "state"), e.lab.Prefix+"g"+slot, pool, filterConf)
	if err := os.WriteFile(o.gwConfig, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	tok, err := d.Login(ctx, dex.ClientID, "alice")
	if err != nil {
		return nil, err
	}
	claims, err := dex.Claims(tok.IDToken)
	if err != nil {
		return nil, err
	}
	exp, _ := claims["exp"].(float64)
	sub, _ := claims["sub"].(string)
	cache := &auth.Cache{Dir: o.configDir}
	if err := cache.Save(&auth.Tokens{Server: oursURL, Issuer: dex.Issuer, ClientID: dex.ClientID,
		IDToken: tok.IDToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		Expiry: time.Unix(int64(exp), 0), Subject: sub, Email: "alice@example.com"}); err != nil {
		return nil, err
	}
	e.lab.AddLogFile("agent "+slot, filepath.Join(o.stateDir, "agent.log"))
	return o, nil
}

func (o *ours) Name() string     { return o.label }
func (o *ours) Target() string   { return oursGWIP }
func (o *ours) Device() string   { return o.iface }
func (o *ours) Pids() (int, int) { return o.agentPid, pid(o.gwProc) }

// Start runs the gateway and, untimed, one `vpn up`/`vpn down` so that the
// gateway has fetched the identity provider's keys, as a gateway that has
// been serving for a while has.
func (o *ours) Start(ctx context.Context) error {
	p, err := o.e.srv.StartEnv(o.gwName, o.v.env, pinned(serverCPU, o.e.bin.Gateway, "serve", "--config", o.gwConfig)...)
	o.gwProc = p
	if err != nil {
		return err
	}
	hc := o.e.cli.HTTPClient(time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("vpn-gateway exited at start (%v):\n%s", err, p.Log())
		}
		resp, err := hc.Get(oursURL + api.PathDiscovery)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vpn-gateway not serving after 20s (%v):\n%s", err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := o.Up(ctx); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return o.down(ctx)
}

// Up times `vpn up` as a logged-in user types it: from the command's start
// to its exit, which happens only after a reply came back through the
// tunnel. It starts the agent, which inherits the pinning.
func (o *ours) Up(ctx context.Context) (time.Duration, error) {
	if o.v.service {
		if err := o.startAgent(ctx); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	out, err := o.vpn(ctx, "up", "--server", oursURL, "--allow-http", "--interface", o.iface)
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("vpn up: %w\n%s\n%s", err, out, readTail(filepath.Join(o.stateDir, "agent.log")))
	}
	b, err := os.ReadFile(filepath.Join(o.stateDir, "agent.pid"))
	if err != nil {
		return 0, fmt.Errorf("agent pid: %w", err)
	}
	o.agentPid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	if err := o.verify(ctx); err != nil {
		return 0, err
	}
	// The agent's own share: from the up request to the first reply
	// (registration, tunnel, routes, probes); the rest is the CLI starting
	// the agent.
	if out, err := o.vpn(ctx, "status", "--json"); err == nil {
		var st struct {
			SetupMillis float64 `json:"setup_ms"`
		}
		if json.Unmarshal([]byte(out), &st) == nil {
			o.agentSetup = st.SetupMillis
		}
	}
	return took, nil
}

// startAgent runs `vpn agent` as a system service would, before `vpn up`,
// and waits until it answers.
func (o *ours) startAgent(ctx context.Context) error {
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(o.stateDir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := o.e.cli.Command(context.Background(), pinned(clientCPU, o.e.bin.VPN, "--state-dir", o.stateDir, "agent")...)
	cmd.Env = append(os.Environ(), o.clientEnv()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start vpn agent: %w", err)
	}
	go cmd.Wait() // it exits after `vpn down`
	deadline := time.Now().Add(10 * time.Second)
	for {
		// `vpn status` exits 0 with no agent too (state down): only an
		// agent that answered fills agent_version.
		if out, err := o.vpn(ctx, "status", "--json"); err == nil && strings.Contains(out, `"agent_version"`) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vpn agent did not answer within 10s:\n%s", readTail(filepath.Join(o.stateDir, "agent.log")))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (o *ours) vpn(ctx context.Context, args ...string) (string, error) {
	argv := pinned(clientCPU, append([]string{o.e.bin.VPN, "--state-dir", o.stateDir}, args...)...)
	cmd := o.e.cli.Command(ctx, argv...)
	cmd.Env = append(os.Environ(), append([]string{"CLEARPATH_CONFIG_DIR=" + o.configDir}, o.clientEnv()...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (o *ours) down(ctx context.Context) error {
	if out, err := o.vpn(ctx, "down"); err != nil {
		return fmt.Errorf("vpn down: %w\n%s", err, out)
	}
	// The agent exits after answering; wait so the next round starts a
	// fresh one.
	for i := 0; i < 200 && o.agentPid > 0; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", o.agentPid)); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	o.agentPid = 0
	return nil
}

func (o *ours) Stop(ctx context.Context) error {
	err := o.down(ctx)
	stop(o.gwProc)
	o.gwProc = nil
	return err
}

// ---- helpers ----

func pid(p *lab.Proc) int {
	if p == nil {
		return 0
	}
	return p.Pid()
}

func stop(ps ...*lab.Proc) {
	for _, p := range ps {
		if p != nil {
			p.Stop(5 * time.Second)
		}
	}
}

func waitLog(ctx context.Context, p *lab.Proc, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Log(), want) {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v):\n%s", p.Name, err, lastLines(p.Log(), 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: no %q in its log after %s:\n%s", p.Name, want, timeout, lastLines(p.Log(), 20))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(b), 20)
}
