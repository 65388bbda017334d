// Package stack runs the whole ClearPath product in the reference lab: Dex
// on idp, vpn-gateway on gw, and `vpn` clients on laptop, each as the real
// binary a user would run. The end-to-end tests and the demo share it.
package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testca"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// Binaries are the programs the stack runs.
type Binaries struct {
	VPN, Gateway, Dex string
}

// Build compiles cmd/vpn and cmd/vpn-gateway of the repository at root
// into dir (CGO_ENABLED=0, as released) and finds Dex.
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./cmd/vpn", "./cmd/vpn-gateway")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build ./cmd/vpn ./cmd/vpn-gateway: %w\n%s", err, out)
	}
	b := Binaries{VPN: filepath.Join(dir, "vpn"), Gateway: filepath.Join(dir, "vpn-gateway")}
	var err error
	b.Dex, err = dex.Binary()
	return b, err
}

// Prebuilt returns the binaries `make build` left in <root>/bin.
func Prebuilt(root string) (Binaries, error) {
	b := Binaries{VPN: filepath.Join(root, "bin", "vpn"), Gateway: filepath.Join(root, "bin", "vpn-gateway")}
	for _, p := range []string{b.VPN, b.Gateway} {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("%s missing: run `make build`", p)
		}
	}
	var err error
	b.Dex, err = dex.Binary()
	return b, err
}

// The gateway's API in the lab: HTTPS with a certificate of the lab's CA
// (lab.CA) for the gateway's public address.
const (
	GatewayListen = lab.GWPublicIP4 + ":8080"
	ServerURL     = "https://" + GatewayListen
	// MetricsURL is where /metrics is served by default: loopback inside
	// gw (metrics_listen), never the API address.
	MetricsURL = "http://127.0.0.1:9587"
)

// Stack is the running product in a reference lab.
type Stack struct {
	*lab.Reference
	Bin Binaries
	Dex *dex.Server
	// GatewayConfig is the path of the gateway's YAML file.
	GatewayConfig string
	Gateway       *lab.Proc
	// EngIface and OpsIface are the gateway's WireGuard interfaces.
	EngIface, OpsIface string
	// CA is the lab's root; CAFile its PEM file, what clients get as
	// --ca-file. TLSCert and TLSKey are the gateway's certificate files.
	CA                      *testca.CA
	CAFile, TLSCert, TLSKey string
	// URL is the gateway's API: ServerURL, or http:// with WithPlainHTTP.
	URL string
}

var gatewayTmpl = template.Must(template.New("gw").Parse(`# vpn-gateway configuration of the ClearPath lab (generated).
listen: "{{.Listen}}"
endpoint: {{.Endpoint}}
{{if .TLSCert}}tls:
  cert: {{.TLSCert}}
  key: {{.TLSKey}}
{{end}}oidc:
  issuer: {{.Issuer}}
  client_id: {{.ClientID}}
  audience: {{.ClientID}}
  groups_claim: groups
  allow_http: true   # the lab's Dex is plain http inside the lab
store: {{.Store}}
state_dir: {{.StateDir}}
networks:
  - name: eng
    group: engineering
    interface: {{.Eng}}
    listen_port: {{.EngPort}}
    pool: [{{.EngPool4}}, "{{.EngPool6}}"]
    allow: [{{.VPCA4}}, "{{.VPCA6}}"]
{{index .NetExtra "eng"}}  - name: ops
    group: ops
    interface: {{.Ops}}
    listen_port: {{.OpsPort}}
    pool: [{{.OpsPool4}}, "{{.OpsPool6}}"]
    allow: [{{.VPCB4}}, "{{.VPCB6}}"]
{{index .NetExtra "ops"}}`))

// Option changes how Start sets the stack up.
type Option func(*startOptions)

type startOptions struct {
	extraConfig, store string
	plainHTTP          bool
	netExtra           map[string]string
}

// WithNetworkConfig adds YAML lines (indented as keys of a network, e.g.
// "    dns: {servers: [10.10.0.10]}") to the lab's network "eng" or "ops".
func WithNetworkConfig(network, yaml string) Option {
	return func(o *startOptions) {
		if o.netExtra == nil {
			o.netExtra = map[string]string{}
		}
		o.netExtra[network] += yaml + "\n"
	}
}

// WithPlainHTTP serves the gateway's API without TLS (URL then is
// http://GatewayListen): for tests of the client's refusal of plain http.
func WithPlainHTTP() Option {
	return func(o *startOptions) { o.plainHTTP = true }
}

// WithStore makes the gateway use dsn (a PostgreSQL URL) instead of a
// SQLite file in the lab directory.
func WithStore(dsn string) Option {
	return func(o *startOptions) { o.store = strconv.Quote(dsn) }
}

// WithGatewayConfig appends YAML (top-level keys such as key_ttl or
// lifecycle) to the generated gateway configuration.
func WithGatewayConfig(yaml string) Option {
	return func(o *startOptions) { o.extraConfig += "\n" + yaml + "\n" }
}

// Start runs Dex (sqlite storage in the lab dir) and the gateway in ref
// and waits until both answer.
func Start(ctx context.Context, ref *lab.Reference, bin Binaries, opts ...Option) (*Stack, error) {
	var so startOptions
	for _, o := range opts {
		o(&so)
	}
	s := &Stack{Reference: ref, Bin: bin, EngIface: ref.Prefix + "eng", OpsIface: ref.Prefix + "ops", URL: ServerURL}
	var err error
	if err = s.makeCertificate(); err != nil {
		return nil, err
	}
	tlsCert, tlsKey := s.TLSCert, s.TLSKey
	if so.plainHTTP {
		tlsCert, tlsKey, s.URL = "", "", "http://"+GatewayListen
	}
	s.Dex, err = dex.Start(ctx, ref.IDP, "dex", bin.Dex, dex.Config{DBFile: filepath.Join(ref.Dir, "dex.db")})
	if err != nil {
		return nil, err
	}
	s.GatewayConfig = filepath.Join(ref.Dir, "gateway.yaml")
	storeDSN := filepath.Join(ref.Dir, "gateway.db")
	if so.store != "" {
		storeDSN = so.store
	}
	f, err := os.Create(s.GatewayConfig)
	if err != nil {
		return nil, err
	}
	err = gatewayTmpl.Execute(f, map[string]any{
		"Listen": GatewayListen, "Endpoint": lab.GWPublicIP4, "TLSCert": tlsCert, "TLSKey": tlsKey,
		"Issuer": dex.Issuer, "ClientID": dex.ClientID,
		"Store": storeDSN, "StateDir": filepath.Join(ref.Dir, "gateway-state"),
		"Eng": s.EngIface, "EngPort": lab.EngPort, "EngPool4": lab.EngPool4, "EngPool6": lab.EngPool6,
		"VPCA4": lab.VPCA4, "VPCA6": lab.VPCA6,
		"Ops": s.OpsIface, "OpsPort": lab.OpsPort, "OpsPool4": lab.OpsPool4, "OpsPool6": lab.OpsPool6,
		"VPCB4": lab.VPCB4, "VPCB6": lab.VPCB6,
		"NetExtra": so.netExtra,
	})
	if err == nil && so.extraConfig != "" {
		_, err = f.WriteString(so.extraConfig)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write gateway config: %w", err)
	}
	if err := s.StartGateway(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// makeCertificate issues the gateway's certificate (IP SAN of its public
// address) from the lab's CA. Every program the process starts from now on
// trusts that CA through SSL_CERT_FILE (the gateway for its webhooks, the
// clients of tests that do not pass --ca-file); Client.Up passes --ca-file
// as a user would.
func (s *Stack) makeCertificate() error {
	ca, caFile, err := lab.CA()
	if err != nil {
		return fmt.Errorf("lab CA: %w", err)
	}
	leaf, err := ca.Issue(lab.GWPublicIP4, lab.GWIDPIP4)
	if err != nil {
		return err
	}
	if s.TLSCert, s.TLSKey, err = leaf.Write(s.Dir, "gateway-tls"); err != nil {
		return fmt.Errorf("write the gateway's certificate: %w", err)
	}
	s.CA, s.CAFile = ca, caFile
	os.Setenv("SSL_CERT_FILE", caFile)
	return nil
}

// RenewCertificate writes a new certificate (new serial, same names) over
// the gateway's certificate files, as an operator's renewal would; the
// gateway serves it after a reload.
func (s *Stack) RenewCertificate() (*testca.Leaf, error) {
	leaf, err := s.CA.Issue(lab.GWPublicIP4, lab.GWIDPIP4)
	if err != nil {
		return nil, err
	}
	if _, _, err := leaf.Write(s.Dir, "gateway-tls"); err != nil {
		return nil, err
	}
	return leaf, nil
}

// StartGateway starts vpn-gateway in gw and waits for its API.
func (s *Stack) StartGateway(ctx context.Context) error {
	p, err := s.GW.Start("gateway", s.Bin.Gateway, "serve", "--config", s.GatewayConfig, "--log-level", "debug")
	if err != nil {
		return err
	}
	s.Gateway = p
	hc := s.GW.HTTPClient(time.Second)
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if done, err := p.Exited(); done {
			return fmt.Errorf("vpn-gateway exited while starting (%v):\n%s", err, p.Log())
		}
		resp, err := hc.Get(s.URL + api.PathDiscovery)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", api.PathDiscovery, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vpn-gateway not serving %s after 20s (%v):\n%s", s.URL, last, p.Log())
}

// StopGateway stops the gateway gracefully (SIGTERM), as an operator would.
func (s *Stack) StopGateway() error {
	if s.Gateway == nil {
		return nil
	}
	err := s.Gateway.Stop(10 * time.Second)
	s.Gateway = nil
	return err
}

// Peers lists the public keys configured on a gateway interface (`wg show
// <iface> peers`).
func (s *Stack) Peers(ctx context.Context, iface string) ([]string, error) {
	out, err := s.GW.Exec(ctx, "wg", "show", iface, "peers")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// TokenFile logs user in (password grant, client clearpath) and writes the
// ID token to a 0600 file in the lab dir, as `vpn up --token-file` wants.
func (s *Stack) TokenFile(ctx context.Context, user string) (string, error) {
	tok, err := s.Dex.Login(ctx, dex.ClientID, user)
	if err != nil {
		return "", err
	}
	return s.WriteToken(user, tok.IDToken)
}

// WriteToken writes token to <lab dir>/<name>.token (0600).
func (s *Stack) WriteToken(name, token string) (string, error) {
	p := filepath.Join(s.Dir, name+".token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// Client is one `vpn` installation on the laptop: its own state dir and
// interface name, so several can coexist.
type Client struct {
	Stack    *Stack
	Name     string
	StateDir string
	Iface    string
	// ConfigDir is the user's config dir (CLEARPATH_CONFIG_DIR) for Run.
	ConfigDir string
}

// Client returns the client called name (short: it becomes part of the
// interface name).
func (s *Stack) Client(name string) *Client {
	iface := s.Prefix + "-" + name
	if len(iface) > 15 {
		iface = iface[:15]
	}
	dir := filepath.Join(s.Dir, "client-"+name)
	os.MkdirAll(dir, 0o700)
	s.AddLogFile("agent of "+name, filepath.Join(dir, "agent.log"))
	return &Client{Stack: s, Name: name, StateDir: dir, Iface: iface, ConfigDir: filepath.Join(dir, "config")}
}

// Run runs `vpn --state-dir <dir> args...` in laptop, with the client's
// own CLEARPATH_CONFIG_DIR (tokens, remembered server settings), and returns its
// combined output.
func (c *Client) Run(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{"env", "CLEARPATH_CONFIG_DIR=" + c.ConfigDir, c.Stack.Bin.VPN, "--state-dir", c.StateDir}, args...)
	return c.Stack.Laptop.Exec(ctx, argv...)
}

// Up runs `vpn up` with a token file and the lab's CA as --ca-file, and
// returns its output and wall time.
func (c *Client) Up(ctx context.Context, tokenFile string) (string, time.Duration, error) {
	start := time.Now()
	out, err := c.Run(ctx, "up", "--server", c.Stack.URL, "--ca-file", c.Stack.CAFile, "--token-file", tokenFile, "--interface", c.Iface)
	return out, time.Since(start), err
}

// Down runs `vpn down`.
func (c *Client) Down(ctx context.Context) (string, error) { return c.Run(ctx, "down") }

// Status is the part of `vpn status --json` the lab looks at (the full
// type is client/control.Status).
type Status struct {
	State     string   `json:"state"`
	Server    string   `json:"server"`
	Interface string   `json:"interface"`
	Addresses []string `json:"addresses"`
	Endpoint  string   `json:"endpoint"`
	RxBytes   int64    `json:"rx_bytes"`
	TxBytes   int64    `json:"tx_bytes"`
	Routes    []string `json:"routes"`
}

// Status runs `vpn status --json` and decodes it; the raw output is
// returned too.
func (c *Client) Status(ctx context.Context) (*Status, string, error) {
	out, err := c.Run(ctx, "status", "--json")
	if err != nil {
		return nil, out, err
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, out, fmt.Errorf("vpn status --json: %w\n%s", err, out)
	}
	return &st, out, nil
}

// TunnelAddrs returns the global addresses on the client's interface in
// laptop (what `ip addr show dev <iface>` lists), or an error if the
// interface does not exist.
func (c *Client) TunnelAddrs(ctx context.Context) ([]netip.Addr, error) {
	out, err := c.Stack.Laptop.Exec(ctx, "ip", "-o", "addr", "show", "dev", c.Iface, "scope", "global")
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					addrs = append(addrs, p.Addr())
				}
			}
		}
	}
	return addrs, nil
}
