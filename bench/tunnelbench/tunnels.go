package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/wgdev"
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

func (b *bare) Name() string                              { return "bare veth" }
func (b *bare) Start(context.Context) error               { return nil }
func (b *bare) Up(context.Context) (time.Duration, error) { return 0, nil }
func (b *bare) Target() string                            { return srvVeth4 }
func (b *bare) Device() string                            { return b.e.cliVethName }
func (b *bare) Pids() (int, int)                          { return 0, 0 }
func (b *bare) Stop(context.Context) error                { return nil }

// ---- reference wireguard-go ----

// wgGo is the wireguard-go program of the version go.mod pins, one per end,
// configured with `wg setconf` and `ip` as wg-quick would.
type wgGo struct {
	e                  *env
	cliKey, srvKey     wgtypes.Key
	cliIface, srvIface string
	cliProc, srvProc   *lab.Proc
}

const (
	wgPort  = 51830
	wgSrvIP = "10.66.0.1"
	wgCliIP = "10.66.0.2"
)

func newWgGo(e *env) (*wgGo, error) {
	w := &wgGo{e: e, cliIface: e.lab.Prefix + "wgc", srvIface: e.lab.Prefix + "wgs"}
	var err error
	if w.cliKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		return nil, err
	}
	if w.srvKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *wgGo) Name() string     { return "wireguard-go (reference)" }
func (w *wgGo) Target() string   { return wgSrvIP }
func (w *wgGo) Device() string   { return w.cliIface }
func (w *wgGo) Pids() (int, int) { return pid(w.cliProc), pid(w.srvProc) }

func (w *wgGo) Start(ctx context.Context) error {
	conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = %d\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n",
		w.srvKey, wgPort, w.cliKey.PublicKey(), wgCliIP)
	p, err := w.startEnd(ctx, w.e.srv, serverCPU, w.srvIface, conf, wgSrvIP)
	w.srvProc = p
	return err
}

func (w *wgGo) Up(ctx context.Context) (time.Duration, error) {
	conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\n\n[Peer]\nPublicKey = %s\nEndpoint = %s:%d\nAllowedIPs = 10.66.0.0/24\n",
		w.cliKey, w.srvKey.PublicKey(), srvVeth4, wgPort)
	start := time.Now()
	p, err := w.startEnd(ctx, w.e.cli, clientCPU, w.cliIface, conf, wgCliIP)
	w.cliProc = p
	if err != nil {
		return 0, err
	}
	if err := firstReply(ctx, w.e.cli, wgSrvIP, 10*time.Millisecond); err != nil {
		return 0, fmt.Errorf("wireguard-go: %w\n%s", err, p.Log())
	}
	return time.Since(start), nil
}

// startEnd runs wireguard-go in the foreground on iface, waits for its UAPI
// socket, applies conf and brings the link up with addr.
func (w *wgGo) startEnd(ctx context.Context, n *lab.Node, cpu int, iface, conf, addr string) (*lab.Proc, error) {
	confPath := filepath.Join(w.e.dir, iface+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p, err := n.Start("wireguard-go-"+n.Name, pinned(cpu, w.e.bin.WireGuardGo, "-f", iface)...)
	if err != nil {
		return nil, err
	}
	for !wgdev.InUse(iface) {
		if done, err := p.Exited(); done {
			return p, fmt.Errorf("wireguard-go %s exited at start (%v):\n%s", iface, err, p.Log())
		}
		if ctx.Err() != nil {
			return p, fmt.Errorf("wireguard-go %s: no UAPI socket: %w", iface, ctx.Err())
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, argv := range [][]string{
		{"wg", "setconf", iface, confPath},
		{"ip", "addr", "add", addr + "/24", "dev", iface},
		{"ip", "link", "set", iface, "up"},
	} {
		if _, err := n.Exec(ctx, argv...); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (w *wgGo) Stop(context.Context) error {
	stop(w.cliProc, w.srvProc)
	w.cliProc, w.srvProc = nil, nil
	return nil
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
	if err := firstReply(ctx, o.e.cli, ovpnSrvIP, 10*time.Millisecond); err != nil {
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
	e     *env
	label string
	// env is extra environment for the agent and the gateway (tuning
	// switches for the ablation rows).
	envv      []string
	dex       *dex.Server
	gwConfig  string
	gwProc    *lab.Proc
	stateDir  string
	configDir string
	iface     string
	agentPid  int
	// agentSetup is the agent's share of the last Up (ms).
	agentSetup float64
	// serviceAgent starts the agent before timing `vpn up`, as when a
	// system service runs it.
	serviceAgent bool
}

const (
	oursGWIP  = "100.64.0.1"
	oursURL   = "http://" + srvVeth4 + ":8080"
	oursLabel = "ClearPath"
)

// newOurs prepares Dex, the gateway's configuration and a logged-in user's
// token cache (the state `vpn login` leaves).
func newOurs(ctx context.Context, e *env, d *dex.Server, label, slot string, envv []string) (*ours, error) {
	o := &ours{e: e, label: label, envv: envv, dex: d,
		stateDir: filepath.Join(e.dir, "client-"+slot), configDir: filepath.Join(e.dir, "config-"+slot),
		iface: e.lab.Prefix + "c" + slot}
	gwDir := filepath.Join(e.dir, "gateway-"+slot)
	if err := os.MkdirAll(gwDir, 0o700); err != nil {
		return nil, err
	}
	o.gwConfig = filepath.Join(gwDir, "gateway.yaml")
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
    pool: [100.64.0.0/24, "fd00:64::/64"]
    allow: [10.10.0.0/16]
`, srvVeth4, srvVeth4, dex.Issuer, dex.ClientID, dex.ClientID,
		filepath.Join(gwDir, "gateway.db"), filepath.Join(gwDir, "state"), e.lab.Prefix+"g"+slot)
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
	p, err := o.e.srv.StartEnv("gateway", o.envv, pinned(serverCPU, o.e.bin.Gateway, "serve", "--config", o.gwConfig)...)
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
	if o.serviceAgent {
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
	cmd.Env = append(os.Environ(), o.envv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start vpn agent: %w", err)
	}
	go cmd.Wait() // it exits after `vpn down`
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := o.vpn(ctx, "status"); err == nil {
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
	cmd.Env = append(os.Environ(), append([]string{"CLEARPATH_CONFIG_DIR=" + o.configDir}, o.envv...)...)
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
