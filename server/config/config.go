// Package config loads and validates the gateway's YAML configuration. Every
// error names the field it is about, so an operator can fix it without
// reading code, and nothing is started from a config that failed validation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the gateway configuration file.
type Config struct {
	Listen   string        `yaml:"listen"`
	Endpoint string        `yaml:"endpoint"`
	OIDC     OIDC          `yaml:"oidc"`
	Store    string        `yaml:"store"`
	StateDir string        `yaml:"state_dir"`
	KeyTTL   time.Duration `yaml:"key_ttl"`
	Networks []Network     `yaml:"networks"`
	// Operations side (lifecycle.go): lifecycle warnings and webhook, admin
	// socket, metrics listener.
	Lifecycle     Lifecycle `yaml:"lifecycle"`
	AdminSocket   string    `yaml:"admin_socket"`
	MetricsListen string    `yaml:"metrics_listen"`
	// Flows: the eBPF per-user filter and flow log on each group interface.
	Flows Flows `yaml:"flows"`
	// Addresses and retention (secrets.go): how long a device's address
	// outlives its key, and how long the audit log keeps entries.
	AllocationGrace time.Duration `yaml:"allocation_grace"`
	Audit           Audit         `yaml:"audit"`
	// IdlePeerTimeout: a peer idle this long leaves its WireGuard device
	// until its next handshake initiation (peers.go; default 5m).
	IdlePeerTimeout time.Duration `yaml:"idle_peer_timeout"`
	// TLS makes the API serve HTTPS (tls.go); without it the API is plain
	// HTTP, which clients refuse unless told --allow-http.
	TLS *TLS `yaml:"tls"`
	// Public API hardening (api.go): timeouts and caps of the API server,
	// the proxies whose X-Forwarded-For is believed, and the bearer token
	// that opens /metrics on the API address.
	API            API            `yaml:"api"`
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	MetricsToken   string         `yaml:"metrics_token"`
	// The admin web page (admin.go): where it listens, who may use it and
	// how they log in.
	AdminListen string    `yaml:"admin_listen"`
	AdminGroup  string    `yaml:"admin_group"`
	Admin       AdminPage `yaml:"admin"`
}

// Flows configures the eBPF filter: it drops packets whose source is no
// registered peer's address and logs every flow with its user.
type Flows struct {
	// Filter is "auto" (default: on where the kernel can run it, a warning
	// otherwise), "on" (refuse to start without it) or "off".
	Filter string `yaml:"filter"`
	// Log is the flow log (JSON lines); default <state_dir>/flows.jsonl,
	// "-" for none.
	Log string `yaml:"log"`
	// UserFlows is how many flows one user may hold in the kernel's flow
	// table at once (default 4096): from 7/8 of it on their least
	// recently active flows are written and evicted, beyond it their new
	// flows are dropped. Nobody else's flows are touched.
	UserFlows int `yaml:"user_flows"`
	// TableMax caps the flow table, which is otherwise sized so that every
	// address of every pool could hold its user's quota (default 2097152;
	// memory is used only by live flows, about 200 bytes each).
	TableMax int `yaml:"table_max"`
	// Unparsed says what happens to an IPv6 packet whose transport header
	// the filter cannot reach (more than 6 extension headers, or cut
	// off): "drop" (default) or "allow"; either way it is counted, logged
	// with its user and written to the flow log.
	Unparsed string `yaml:"unparsed"`
}

// Flow table defaults.
const (
	DefaultFlowsPerUser  = 4096
	DefaultFlowTableMax  = 2097152
	FlowUnparsedDrop     = "drop"
	FlowUnparsedAllow    = "allow"
	maxFlowTableEntries  = 1 << 28
	minFlowsPerUserLimit = 16
)

// Flow filter modes.
const (
	FlowFilterAuto = "auto"
	FlowFilterOn   = "on"
	FlowFilterOff  = "off"
)

// OIDC names the identity provider whose tokens the gateway accepts.
type OIDC struct {
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// Audience the token must carry; defaults to ClientID.
	Audience string `yaml:"audience"`
	// GroupsClaim is a claim name or a dotted path into nested claims
	// ("realm_access.roles" as Keycloak emits). Defaults to "groups".
	GroupsClaim string `yaml:"groups_claim"`
	// RequireEmailVerified refuses tokens whose e-mail is not verified
	// (email_verified false or absent); default true (secrets.go).
	RequireEmailVerified *bool `yaml:"require_email_verified"`
	// AllowHTTP accepts an http:// issuer (a lab): the provider's signing
	// keys and discovery document then travel unauthenticated.
	AllowHTTP bool `yaml:"allow_http"`
}

// Network is one isolated network: a group, its WireGuard interface and key,
// its address pools and what it may reach.
type Network struct {
	Name       string         `yaml:"name"`
	Group      string         `yaml:"group"`
	Interface  string         `yaml:"interface"`
	ListenPort int            `yaml:"listen_port"`
	Pool       []netip.Prefix `yaml:"pool"`
	Allow      []netip.Prefix `yaml:"allow"`
	Table      int            `yaml:"table"`
	MTU        int            `yaml:"mtu"`
	// Probe lists hosts inside the allowed CIDRs that answer ping; `vpn-gateway
	// doctor` pings them from the pool's gateway address to prove the VPC
	// routes the pool back.
	Probe []netip.Addr `yaml:"probe"`
	// LocalPorts are the ports of the gateway host itself this network's
	// clients may reach ("udp/53", "tcp/53"); everything else addressed to
	// the host from the network's interface is dropped (localports.go).
	LocalPorts []string `yaml:"local_ports"`
	// Access gives named users and groups their own allow list (access.go),
	// enforced by the eBPF filter.
	Access []AccessRule `yaml:"access"`
	// MayWiden lists where access rules may reach beyond Allow. The
	// routing table then routes what rules widen to for the whole
	// network, and the eBPF filter holds every other user of the network
	// to Allow.
	MayWiden []netip.Prefix `yaml:"may_widen"`
	// DNS is pushed to the network's clients (split DNS, dns.go).
	DNS *NetworkDNS `yaml:"dns"`
}

// Pool4 returns the IPv4 pool (zero if none).
func (n Network) Pool4() netip.Prefix { return n.pool(true) }

// Pool6 returns the IPv6 pool (zero if none).
func (n Network) Pool6() netip.Prefix { return n.pool(false) }

func (n Network) pool(v4 bool) netip.Prefix {
	for _, p := range n.Pool {
		if p.Addr().Is4() == v4 {
			return p
		}
	}
	return netip.Prefix{}
}

// GatewayAddrs are the gateway's own tunnel addresses: the first host of each pool.
func (n Network) GatewayAddrs() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range n.Pool {
		out = append(out, netip.PrefixFrom(p.Masked().Addr().Next(), p.Bits()))
	}
	return out
}

// EndpointFor is the host:port clients dial for network n.
func (c *Config) EndpointFor(n Network) string {
	return net.JoinHostPort(strings.Trim(c.Endpoint, "[]"), strconv.Itoa(n.ListenPort))
}

// Defaults applied to fields left empty.
const (
	DefaultListen      = ":8080"
	DefaultKeyTTL      = 30 * 24 * time.Hour
	DefaultStateDir    = "/var/lib/clearpath-gateway"
	DefaultMTU         = 1420
	DefaultGroupsClaim = "groups"
	DefaultTableBase   = 1000
	// MinKeyTTL is low enough for tests that watch a key expire and high
	// enough that a typo ("10" read as nanoseconds) is refused.
	MinKeyTTL = 10 * time.Second
)

// Load reads, parses and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse parses and validates a YAML document. Unknown fields are errors, so a
// typo never silently falls back to a default.
func Parse(data []byte) (*Config, error) {
	var c Config
	data = expandDays(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config")
		}
		return nil, nameFields(data, err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.KeyTTL == 0 {
		c.KeyTTL = DefaultKeyTTL
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.OIDC.Audience == "" {
		c.OIDC.Audience = c.OIDC.ClientID
	}
	if c.OIDC.GroupsClaim == "" {
		c.OIDC.GroupsClaim = DefaultGroupsClaim
	}
	if c.Store == "" {
		c.Store = c.StateDir + "/gateway.db"
	}
	if c.Flows.Filter == "" {
		c.Flows.Filter = FlowFilterAuto
	}
	switch c.Flows.Log {
	case "":
		c.Flows.Log = c.StateDir + "/flows.jsonl"
	case "-":
		c.Flows.Log = ""
	}
	if c.Flows.UserFlows == 0 {
		c.Flows.UserFlows = DefaultFlowsPerUser
	}
	if c.Flows.TableMax == 0 {
		c.Flows.TableMax = DefaultFlowTableMax
	}
	if c.Flows.Unparsed == "" {
		c.Flows.Unparsed = FlowUnparsedDrop
	}
	c.applyLifecycleDefaults()
	c.applySecretsDefaults()
	c.applyTLSDefaults()
	c.applyAPIDefaults()
	c.applyAdminDefaults()
	for i := range c.Networks {
		n := &c.Networks[i]
		if n.MTU == 0 {
			n.MTU = DefaultMTU
		}
		if n.Table == 0 {
			n.Table = DefaultTableBase + i
		}
	}
}

// Validate checks every field and returns all problems at once, each naming
// its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port (%v)", c.Listen, err)
	} else if err := validPort(c.Listen); err != nil {
		bad("listen", "%q: %v", c.Listen, err)
	}
	switch ep := strings.Trim(c.Endpoint, "[]"); {
	case c.Endpoint == "":
		bad("endpoint", "required: the host name or IP address clients dial")
	case strings.ContainsAny(ep, " /") || strings.Count(ep, ":") == 1:
		bad("endpoint", "%q must be a host name or an IP literal without port (the network's listen_port is added)", c.Endpoint)
	default:
		if strings.Contains(ep, ":") {
			if _, err := netip.ParseAddr(ep); err != nil {
				bad("endpoint", "%q is not an IPv6 address", c.Endpoint)
			}
		}
	}
	if c.OIDC.Issuer == "" {
		bad("oidc.issuer", "required")
	} else if u, err := url.Parse(c.OIDC.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("oidc.issuer", "%q is not an http(s) URL", c.OIDC.Issuer)
	} else if u.Scheme == "http" && !c.OIDC.AllowHTTP {
		bad("oidc.issuer", "%q is plain http: the provider's signing keys would travel unauthenticated, so anyone on the path could forge tokens; use https, or set oidc.allow_http: true (labs only)", c.OIDC.Issuer)
	}
	if c.OIDC.ClientID == "" {
		bad("oidc.client_id", "required")
	}
	if strings.HasPrefix(c.OIDC.GroupsClaim, ".") || strings.HasSuffix(c.OIDC.GroupsClaim, ".") || strings.Contains(c.OIDC.GroupsClaim, "..") {
		bad("oidc.groups_claim", "%q is not a claim name or dotted path", c.OIDC.GroupsClaim)
	}
	if c.KeyTTL < MinKeyTTL {
		bad("key_ttl", "%s is shorter than %s", c.KeyTTL, MinKeyTTL)
	}
	if f := c.Flows.Filter; f != FlowFilterAuto && f != FlowFilterOn && f != FlowFilterOff {
		bad("flows.filter", "%q is not auto, on or off", f)
	}
	if n := c.Flows.UserFlows; n < minFlowsPerUserLimit || n > maxFlowTableEntries {
		bad("flows.user_flows", "%d is outside %d-%d", n, minFlowsPerUserLimit, maxFlowTableEntries)
	}
	if n := c.Flows.TableMax; n < c.Flows.UserFlows || n > maxFlowTableEntries {
		bad("flows.table_max", "%d is outside flows.user_flows (%d) to %d", n, c.Flows.UserFlows, maxFlowTableEntries)
	}
	if u := c.Flows.Unparsed; u != FlowUnparsedDrop && u != FlowUnparsedAllow {
		bad("flows.unparsed", "%q is not drop or allow", u)
	}
	if strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://") {
		if _, err := url.Parse(c.Store); err != nil {
			bad("store", "bad PostgreSQL DSN %s (the URL does not parse)", RedactDSN(c.Store))
		}
	}
	if len(c.Networks) == 0 {
		bad("networks", "at least one network is required")
	}
	names, groups, ifaces, ports, tables := map[string]int{}, map[string]int{}, map[string]int{}, map[int]int{}, map[int]int{}
	type pool struct {
		p   netip.Prefix
		idx int
	}
	var pools []pool
	for i, n := range c.Networks {
		f := func(name string) string { return fmt.Sprintf("networks[%d].%s", i, name) }
		dup := func(seen map[string]int, key, field string) {
			if j, ok := seen[key]; ok {
				bad(f(field), "%q is also used by networks[%d]", key, j)
			}
			seen[key] = i
		}
		if !validName(n.Name) {
			bad(f("name"), "%q must be 1-32 letters, digits, '-' or '_'", n.Name)
		}
		dup(names, n.Name, "name")
		if n.Group == "" {
			bad(f("group"), "required: the OIDC group whose members join this network")
		}
		dup(groups, n.Group, "group")
		if n.Interface == "" || len(n.Interface) > 15 || strings.ContainsAny(n.Interface, "/ :") {
			bad(f("interface"), "%q must be 1-15 characters without '/', ':' or spaces", n.Interface)
		}
		dup(ifaces, n.Interface, "interface")
		if n.ListenPort < 1 || n.ListenPort > 65535 {
			bad(f("listen_port"), "%d is not a port (1-65535)", n.ListenPort)
		} else if j, ok := ports[n.ListenPort]; ok {
			bad(f("listen_port"), "%d is also used by networks[%d]", n.ListenPort, j)
		}
		ports[n.ListenPort] = i
		if n.Table < 1 || n.Table == 253 || n.Table == 254 || n.Table == 255 || n.Table > 0xFFFFFFF0 {
			bad(f("table"), "%d is reserved or out of range", n.Table)
		} else if j, ok := tables[n.Table]; ok {
			bad(f("table"), "%d is also used by networks[%d]", n.Table, j)
		}
		tables[n.Table] = i
		if n.MTU < 1280 || n.MTU > 9000 {
			bad(f("mtu"), "%d is outside 1280-9000", n.MTU)
		}
		v4, v6 := 0, 0
		for k, p := range n.Pool {
			pf := fmt.Sprintf("networks[%d].pool[%d]", i, k)
			switch {
			case !p.IsValid():
				bad(pf, "not a prefix")
				continue
			case p != p.Masked():
				bad(pf, "%s has host bits set (did you mean %s?)", p, p.Masked())
			case p.Addr().Is4():
				v4++
				if p.Bits() > 30 {
					bad(pf, "%s is too small: an IPv4 pool needs at least a /30", p)
				}
			default:
				v6++
				if p.Bits() > 126 {
					bad(pf, "%s is too small: an IPv6 pool needs at least a /126", p)
				}
			}
			for _, q := range pools {
				if q.p.Overlaps(p) {
					bad(pf, "%s overlaps the pool %s of networks[%d]", p, q.p, q.idx)
				}
			}
			pools = append(pools, pool{p, i})
		}
		if v4 != 1 || v6 > 1 {
			bad(f("pool"), "needs exactly one IPv4 prefix and at most one IPv6 prefix (got %d IPv4, %d IPv6)", v4, v6)
		}
		if len(n.Allow) == 0 {
			bad(f("allow"), "at least one allowed CIDR is required")
		}
		for k, p := range n.Allow {
			af := fmt.Sprintf("networks[%d].allow[%d]", i, k)
			if !p.IsValid() {
				bad(af, "not a prefix")
			} else if p != p.Masked() {
				bad(af, "%s has host bits set (did you mean %s?)", p, p.Masked())
			}
		}
		validateProbe(n, f, bad)
		validateLocalPorts(n, f, bad)
		validateAccess(c, n, f, bad)
		validateDNS(n, f, bad)
	}
	c.validateLifecycle(bad)
	c.validateSecrets(bad)
	c.validateTLS(bad)
	c.validateAPI(bad)
	c.validateAdmin(bad)
	c.validatePeers(bad)
	return errors.Join(errs...)
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Example is the commented configuration printed by `vpn-gateway init`.
const Example = `# ClearPath gateway configuration.
# API address the clients and the admin page use.
listen: ":8080"
# HTTPS for the API (clients refuse plain http to anything but loopback).
# Either certificate files, re-read on reload (SIGHUP, vpn-gateway reload):
# tls:
#   cert: /etc/clearpath/tls/gateway.crt   # PEM, the chain after the certificate
#   key: /etc/clearpath/tls/gateway.key
# or certificates from Let's Encrypt (or another ACME CA), renewed on their
# own; TLS-ALPN-01 needs listen on port 443, http_listen adds HTTP-01:
# tls:
#   acme:
#     domains: [vpn.example.com]
#     email: ops@example.com
#     cache_dir: /var/lib/clearpath-gateway/acme   # account key and certificates
#     accept_tos: true       # you accept the CA's terms of service
#     # http_listen: ":80"   # HTTP-01 challenges (and a redirect to https)
#     # directory_url: https://acme-staging-v02.api.letsencrypt.org/directory
# Public host name or IP address clients dial; each network's listen_port is
# appended. An IPv6 literal may be written bare or in brackets.
endpoint: vpn.example.com
oidc:
  issuer: https://id.example.com/realms/company   # the provider's issuer URL
  client_id: clearpath                            # the public client the CLI logs in with
  audience: clearpath                             # tokens must name this audience (default: client_id)
  groups_claim: groups                            # or a dotted path, e.g. realm_access.roles
  # require_email_verified: true   # refuse tokens whose email_verified is false or absent;
  #                                # false for providers that never send the claim
  # allow_http: true     # accept an http:// issuer (labs only: signing keys travel in clear)
# SQLite file (default <state_dir>/gateway.db), or a postgres:// DSN to share
# users and addresses between several gateways.
store: /var/lib/clearpath-gateway/gateway.db
state_dir: /var/lib/clearpath-gateway
key_ttl: 720h            # a registered key expires after this long
# Warnings and notifications (defaults shown; uncomment to change):
# lifecycle:
#   warn_before: [72h, 24h]  # warn this long before a key expires
#   unused_after: 24h        # warn when a key had no handshake this long after registration (0s: off)
#   idle_after: 168h         # warn when a key has been silent this long (0s: off)
#   store_poll: 1s           # re-read the store this often (revocations from other hosts)
#   webhook:
#     url: https://hooks.example.org/clearpath   # JSON POST per event, retried with backoff
#     secret: change-me      # signs each body: X-ClearPath-Signature: sha256=HMAC
#     max_attempts: 6
# admin_socket: /var/lib/clearpath-gateway/admin.sock   # for reload, revoke (default in state_dir)
# /metrics names every user: it is served on metrics_listen (default
# 127.0.0.1:9587, loopback; "off" for none) and never on listen, unless
# metrics_token is set (then only with "Authorization: Bearer <token>").
# metrics_listen: "127.0.0.1:9587"
# metrics_token: <openssl rand -hex 32>
# Behind a reverse proxy or load balancer: X-Forwarded-For (its rightmost
# address that is no proxy of yours) is the client's address for audit and
# rate limits only when the connection comes from one of these.
# trusted_proxies: [10.0.0.0/24]
# Limits of the API (defaults shown): timeouts, header size, open
# connections per client address (an IPv6 /64) and in all, and token
# buckets on registrations per user and per client address ("off" to drop).
# api:
#   read_header_timeout: 5s
#   read_timeout: 15s
#   write_timeout: 30s
#   idle_timeout: 60s
#   max_header_bytes: 16384
#   max_conns_per_source: 64
#   max_conns: 8192
#   register_per_user: 10/1m      # N/DURATION: N at once, N per DURATION
#   register_per_source: 60/1m
# Per-user eBPF filter on each group interface: drops packets from addresses
# no peer holds and logs every flow with its user (defaults shown):
# flows:
#   filter: auto             # auto: on where the kernel can (Linux >= 6.6), on: required, off
#   log: /var/lib/clearpath-gateway/flows.jsonl   # JSON lines; "-" for none
#   user_flows: 4096         # flows one user may hold; beyond 7/8 their least recently active are evicted (logged)
#   table_max: 2097152       # cap of the flow table (else pool addresses x user_flows)
#   unparsed: drop           # IPv6 packets whose transport header cannot be reached: drop or allow (logged either way)
# A device whose key was revoked, deleted or expired keeps its addresses this
# long (it gets them back if it returns); then they are free for others.
# allocation_grace: 168h
# audit:
#   retain: 9600h            # 400 days; older entries are pruned (0s: keep for ever)
# A peer idle (no handshake, no traffic) this long leaves its WireGuard device
# and comes back with its next handshake initiation (saves ~40 KB per peer).
# idle_peer_timeout: 5m
networks:
  # One network per group: its own WireGuard interface, key, port, address
  # pools and routing table. Members reach only the allowed CIDRs.
  - name: eng
    group: engineering
    interface: wg-eng
    listen_port: 51820
    pool: [100.64.0.0/24, "fd00:64::/64"]
    allow: [10.10.0.0/16, "fd10:10::/64"]
    # table: 1000        # policy routing table (default 1000 + position)
    # mtu: 1420
    # probe: [10.10.0.10] # hosts that answer ping, for vpn-gateway doctor's return-route check
    # The gateway host itself is closed to the network's clients (they may
    # ping its tunnel address and use the API port); open ports of a service
    # on the host, e.g. a DNS forwarder:
    # local_ports: [udp/53, tcp/53]
    # Split DNS pushed to the clients: names under domains are resolved by
    # servers (inside allow, or the gateway's own tunnel address 100.64.0.1
    # with local_ports udp/53); an empty domains list sends all DNS of
    # clients with --all-traffic through the tunnel.
    # dns:
    #   servers: [10.10.0.2]
    #   domains: [corp.internal]
    # Access rules (the eBPF filter enforces them): a user named by rules,
    # by e-mail/subject or by an OIDC group, reaches the union of their
    # allow entries instead of the network's allow; an entry may name
    # ports (tcp/N, udp/N, tcp/N-M, icmp). Entries narrow allow, or widen
    # it into may_widen.
    # may_widen: [10.99.0.0/16]
    # access:
    #   - groups: [dba]
    #     allow: ["10.10.0.10/32 tcp/5432", "10.10.0.10/32 icmp"]
    #   - users: [alice@example.com]
    #     allow: [10.10.5.0/24, "10.99.0.5/32 tcp/22"]
  - name: ops
    group: ops
    interface: wg-ops
    listen_port: 51821
    pool: [100.65.0.0/24, "fd00:65::/64"]
    allow: [10.20.0.0/16, "fd10:20::/64"]
`
