// Package control is the agent's control API: HTTP with JSON bodies over a
// unix socket in the state directory. The CLI and the tray are its clients,
// so both always show the same state.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"time"
)

// SocketName is the control socket's file name inside the state directory.
const SocketName = "agent.sock"

// SocketPath returns the control socket of stateDir.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// States of the agent.
const (
	StateDown       = "down"
	StateConnecting = "connecting"
	StateUp         = "up"
	StateError      = "error"
	// StateBlocked: the registration expired unrenewed and the session is
	// fail-closed: a full tunnel's routes stay, so nothing leaves outside
	// the (dead) tunnel until `vpn up` or `vpn down`.
	StateBlocked = "blocked"
)

// UpRequest asks the agent to connect. The token was obtained by the CLI
// (as the user); the agent never logs in itself.
type UpRequest struct {
	Server    string        `json:"server"`
	Token     string        `json:"token"`
	Network   string        `json:"network,omitempty"`
	Interface string        `json:"interface,omitempty"`
	Timeout   time.Duration `json:"timeout,omitempty"`
	Hostname  string        `json:"hostname,omitempty"`
	// AllTraffic routes 0.0.0.0/0 and ::/0 into the tunnel.
	AllTraffic bool `json:"all_traffic,omitempty"`
	// BlockLAN drops the LAN exceptions of a full tunnel.
	BlockLAN bool `json:"block_lan,omitempty"`
	// RouteLAN lets pushed prefixes take the LAN, its router and the
	// resolvers in use into the tunnel (default: they stay outside).
	RouteLAN bool `json:"route_lan,omitempty"`
	// MaxPrefixes bounds the prefixes a gateway may push (0: the default,
	// 1,000); more are refused.
	MaxPrefixes int `json:"max_prefixes,omitempty"`
	// Where the agent gets a fresh token to renew the registration before
	// it expires. RefreshToken is the user's OIDC refresh token, sent as
	// bytes by the user's own process: the agent keeps it in memory only
	// and refreshes with it at the identity provider, never reading or
	// writing the user's files. TokenFile (root callers only) is a file the
	// agent re-reads (automation keeps it fresh). With neither, the
	// session ends when the registration expires.
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenFile    string `json:"token_file,omitempty"`
	// RotateKey makes a new device key for this registration (a fresh
	// login); the device keeps its addresses.
	RotateKey bool `json:"rotate_key,omitempty"`
	// FailClosed keeps a full tunnel's routes in place when the
	// registration expires unrenewed (state "blocked") instead of taking
	// the tunnel down and restoring routing.
	FailClosed bool `json:"fail_closed,omitempty"`
	// AllowHTTP: the user allowed a plain-http server that is not on
	// loopback (--allow-http); the agent refuses one otherwise.
	AllowHTTP bool `json:"allow_http,omitempty"`
	// MTU sets the tunnel's MTU (0: the gateway's, else 1420); AutoMTU
	// measures the path MTU through the tunnel once it is up and lowers
	// the tunnel's MTU to it (`vpn up --mtu auto`).
	MTU     int  `json:"mtu,omitempty"`
	AutoMTU bool `json:"auto_mtu,omitempty"`
	// CAPEM are extra trusted roots for the gateway and the identity
	// provider (the user's --ca-file, read by the CLI): the agent never
	// opens a CA path on the user's behalf.
	CAPEM []byte `json:"ca_pem,omitempty"`
}

// Overlap is a pushed prefix overlapping a route of the machine's own.
type Overlap struct {
	Pushed string `json:"pushed"`
	Local  string `json:"local"`
	Winner string `json:"winner"`           // "lan" or "tunnel"
	Reason string `json:"reason,omitempty"` // why the LAN won: "connected network", "default router", ...
}

// Status is the agent's state.
type Status struct {
	State            string     `json:"state"`
	Error            string     `json:"error,omitempty"`
	Server           string     `json:"server,omitempty"`
	Network          string     `json:"network,omitempty"`
	User             string     `json:"user,omitempty"`
	Email            string     `json:"email,omitempty"`
	PeerID           string     `json:"peer_id,omitempty"`
	Interface        string     `json:"interface,omitempty"`
	Addresses        []string   `json:"addresses,omitempty"`
	Endpoint         string     `json:"endpoint,omitempty"`
	GatewayPublicKey string     `json:"gateway_public_key,omitempty"`
	AllowedIPs       []string   `json:"allowed_ips,omitempty"`
	LatestHandshake  *time.Time `json:"latest_handshake,omitempty"`
	HandshakeAgeSec  *float64   `json:"handshake_age_seconds,omitempty"`
	RxBytes          int64      `json:"rx_bytes"`
	TxBytes          int64      `json:"tx_bytes"`
	Routes           []string   `json:"routes,omitempty"`
	Rules            []string   `json:"rules,omitempty"`
	Overlaps         []Overlap  `json:"overlaps,omitempty"`
	// GatewayAddresses are the gateway's tunnel addresses (what `up`
	// probes); MTU the tunnel link's; PathMTU the path MTU through the
	// tunnel that `vpn up --mtu auto` measured (0: not measured).
	GatewayAddresses []string `json:"gateway_addresses,omitempty"`
	MTU              int      `json:"mtu,omitempty"`
	PathMTU          int      `json:"path_mtu,omitempty"`
	// FullTunnel: the routes installed into the tunnel capture every
	// address of a family (derived from the kernel, not from a flag).
	FullTunnel bool `json:"full_tunnel,omitempty"`
	// FailClosed: a full tunnel's block stays in place when the
	// registration expires unrenewed (state "blocked").
	FailClosed bool `json:"fail_closed,omitempty"`
	// Notices are one-line messages about what the agent did not take from
	// the gateway (e.g. a default route without --all-traffic).
	Notices []string `json:"notices,omitempty"`
	// RouteLAN: the user let pushes take the LAN into the tunnel.
	RouteLAN  bool       `json:"route_lan,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// DeviceID and PublicKey identify this device's peer at the gateway.
	DeviceID  string `json:"device_id,omitempty"`
	PublicKey string `json:"public_key,omitempty"`
	// RenewAt is when the agent re-registers (new session key, same
	// addresses, tunnel kept); RenewedAt when it last did; RenewError why
	// the last attempt failed. TokenSource says where renewals get tokens.
	RenewAt     *time.Time `json:"renew_at,omitempty"`
	RenewedAt   *time.Time `json:"renewed_at,omitempty"`
	Renewals    int        `json:"renewals,omitempty"`
	RenewError  string     `json:"renew_error,omitempty"`
	TokenSource string     `json:"token_source,omitempty"`
	ConnectedAt *time.Time `json:"connected_at,omitempty"`
	// SetupMillis is how long the last `up` took, from request to the first
	// reply through the tunnel.
	SetupMillis int64 `json:"setup_ms,omitempty"`
	// Login is who is logged in (filled by the CLI from the user's token
	// cache; the agent never sees it).
	Login    *Login `json:"login,omitempty"`
	AgentPID int    `json:"agent_pid,omitempty"`
	// ClientVersion is the vpn binary that asked (filled by the CLI),
	// AgentVersion the agent's, GatewayVersion the gateway's as its last
	// registration answer said (internal/version).
	ClientVersion  string `json:"client_version,omitempty"`
	AgentVersion   string `json:"agent_version,omitempty"`
	GatewayVersion string `json:"gateway_version,omitempty"`
	// DNS is the split DNS pushed by the gateway (nil: none).
	DNS *DNSStatus `json:"dns,omitempty"`
}

// Login describes the user's cached session.
type Login struct {
	Server      string     `json:"server"`
	User        string     `json:"user"`
	TokenExpiry *time.Time `json:"token_expiry,omitempty"`
	CanRefresh  bool       `json:"can_refresh"`
}

// Error is the body of a failed control request.
type Error struct {
	Error string `json:"error"`
}

// Client talks to an agent.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the agent serving socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{Transport: oneShot{socket}}}
}

// The errors a client sees, which the CLI and the tray branch on (errors.Is):
//
//   - ErrNoAgent: nothing listens on the socket (no agent runs);
//   - ErrNoAccess: an agent runs but refuses this user, by the socket's
//     mode or by its policy (AccessError): never read it as "down";
//   - ErrTransient: the connection was made and dropped before an answer
//     (an agent on its way out): ask again a moment later (client/local
//     does, with one retry policy);
//
// anything else is the agent's answer (its reason, verbatim).
var (
	ErrNoAgent   = errors.New("no agent running")
	ErrTransient = errors.New("the agent dropped the connection (it may be exiting)")
)

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("cannot open the agent's socket %s: %w", c.socket, ErrNoAccess)
			}
			return fmt.Errorf("%w (%s)", ErrNoAgent, c.socket)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("agent %s %s: %w", method, path, ctx.Err())
		}
		// Dialled, then reset or closed before an answer: an agent that is
		// exiting (after a down, or killed) does this for a moment.
		return fmt.Errorf("agent %s %s: %w: %w", method, path, ErrTransient, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		if resp.StatusCode == http.StatusNotFound && path == "/v1/restore" {
			return ErrRestoreUnsupported
		}
		if resp.StatusCode == http.StatusNotFound && path == "/v1/dns/repoint" {
			return ErrRepointUnsupported
		}
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusForbidden {
				return &AccessError{e.Error}
			}
			if resp.StatusCode == http.StatusConflict {
				if path == "/v1/dns/repoint" {
					return ErrNoStub
				}
				return ErrSessionActive
			}
			return errors.New(e.Error)
		}
		return fmt.Errorf("agent %s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("agent %s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

// Status returns the agent's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Up connects and returns once traffic crosses the tunnel, or with why not.
func (c *Client) Up(ctx context.Context, req UpRequest) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodPost, "/v1/up", req, &s)
}

// Down disconnects; the agent exits after answering.
func (c *Client) Down(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodPost, "/v1/down", nil, &s)
}

// Restore asks the agent to put the routing table back from its journal
// (and remove any route or rule of ClearPath's) while no session runs:
// what it does at every start, on demand (the tray's "Restore routes").
func (c *Client) Restore(ctx context.Context) (*RestoreReport, error) {
	var r RestoreReport
	return &r, c.do(ctx, http.MethodPost, "/v1/restore", nil, &r)
}

// RepointDNS asks the agent to point resolv.conf back at its stub after
// something rewrote it (what it does on a network change): the rewritten
// file's nameservers become the stub's upstream and the journal's "before".
func (c *Client) RepointDNS(ctx context.Context) (*RepointReport, error) {
	var r RepointReport
	return &r, c.do(ctx, http.MethodPost, "/v1/dns/repoint", nil, &r)
}

// Handler serves the control API over h.
type Handler interface {
	Status() Status
	Up(ctx context.Context, req UpRequest) (Status, error)
	Down(ctx context.Context) (Status, error)
}

// Restorer is a Handler that can restore outside a session (the agent);
// a handler without it answers /v1/restore with 404.
type Restorer interface {
	Restore(ctx context.Context) (RestoreReport, error)
}

// DNSRepointer is a Handler that can point resolv.conf back at its stub
// (the agent); a handler without it answers /v1/dns/repoint with 404.
type DNSRepointer interface {
	RepointDNS(ctx context.Context) (RepointReport, error)
}

// RepointReport says what a repoint did: Changed is false when resolv.conf
// already pointed at the stub; Upstream the servers the stub now forwards
// names outside the routing domains to.
type RepointReport struct {
	Changed  bool     `json:"changed"`
	Upstream []string `json:"upstream,omitempty"`
}

// ErrNoStub: a repoint was asked for while the agent runs no stub resolver.
var ErrNoStub = errors.New("the agent runs no stub resolver (no session with split DNS through resolv.conf): nothing to point resolv.conf at")

// ErrRepointUnsupported: the agent predates /v1/dns/repoint.
var ErrRepointUnsupported = errors.New("this agent cannot point resolv.conf back at its stub on demand (older version): reconnect (vpn down && vpn up)")

// RestoreReport says what a restore did.
type RestoreReport struct {
	Undone   int      `json:"undone"`
	Swept    int      `json:"swept"`
	Problems []string `json:"problems,omitempty"`
}

// ErrSessionActive: a restore was asked for while a session holds routes
// (connecting, up, or the fail-closed block); `down` restores those.
var ErrSessionActive = errors.New("a session is active: disconnect first (disconnecting restores the routes)")

// ErrRestoreUnsupported: the agent predates /v1/restore. It restores at
// every start: restarting it does the same.
var ErrRestoreUnsupported = errors.New("this agent cannot restore on demand (older version): restart it, it restores at start, or run `sudo vpn routes restore` with it stopped")

// AccessError is the agent's refusal (403) as the client sees it.
type AccessError struct{ Reason string }

func (e *AccessError) Error() string { return e.Reason }

// Unwrap makes errors.Is(err, ErrNoAccess) hold for every refusal.
func (e *AccessError) Unwrap() error { return ErrNoAccess }

// MaxRequest bounds a request body.
const MaxRequest = 256 << 10

// DecodeUpRequest parses and checks an up request's body: one JSON object
// of known fields, nothing after it, values in range.
func DecodeUpRequest(r io.Reader) (UpRequest, error) {
	var req UpRequest
	dec := json.NewDecoder(io.LimitReader(r, MaxRequest+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return UpRequest{}, fmt.Errorf("bad up request: %w", err)
	}
	if dec.More() {
		return UpRequest{}, errors.New("bad up request: data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return UpRequest{}, errors.New("bad up request: data after the JSON object")
	}
	if err := req.validate(); err != nil {
		return UpRequest{}, fmt.Errorf("bad up request: %w", err)
	}
	return req, nil
}

// Serve serves the control API on ln with the callers' credentials read
// per connection (ConnContext), so pol can decide per request.
func Serve(ln net.Listener, h Handler, afterDown func(), pol Policy) *http.Server {
	srv := &http.Server{Handler: NewServer(h, afterDown, pol), ReadHeaderTimeout: 5 * time.Second, ConnContext: ConnContext}
	go srv.Serve(ln)
	return srv
}

// NewServer returns the HTTP handler of the control API for h. after, when
// set, runs once a response to /v1/down has been written. pol decides who
// may do what; the server must set ConnContext (see Serve) unless pol is
// Open.
func NewServer(h Handler, afterDown func(), pol Policy) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r, pol, "status", nil) {
			return
		}
		writeJSON(w, http.StatusOK, h.Status())
	})
	mux.HandleFunc("POST /v1/up", func(w http.ResponseWriter, r *http.Request) {
		req, err := DecodeUpRequest(http.MaxBytesReader(w, r.Body, MaxRequest))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: err.Error()})
			return
		}
		if !allowed(w, r, pol, "up", &req) {
			return
		}
		s, err := h.Up(r.Context(), req)
		if err != nil {
			writeJSON(w, http.StatusBadGateway, Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /v1/down", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r, pol, "down", nil) {
			return
		}
		s, err := h.Down(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if afterDown != nil {
			go afterDown()
		}
	})
	if rh, ok := h.(Restorer); ok {
		mux.HandleFunc("POST /v1/restore", func(w http.ResponseWriter, r *http.Request) {
			if !allowed(w, r, pol, "restore", nil) {
				return
			}
			rep, err := rh.Restore(r.Context())
			switch {
			case errors.Is(err, ErrSessionActive):
				writeJSON(w, http.StatusConflict, Error{Error: err.Error()})
			case err != nil:
				writeJSON(w, http.StatusInternalServerError, Error{Error: err.Error()})
			default:
				writeJSON(w, http.StatusOK, rep)
			}
		})
	}
	if dh, ok := h.(DNSRepointer); ok {
		mux.HandleFunc("POST /v1/dns/repoint", func(w http.ResponseWriter, r *http.Request) {
			if !allowed(w, r, pol, "dns-repoint", nil) {
				return
			}
			rep, err := dh.RepointDNS(r.Context())
			switch {
			case errors.Is(err, ErrNoStub):
				writeJSON(w, http.StatusConflict, Error{Error: err.Error()})
			case err != nil:
				writeJSON(w, http.StatusInternalServerError, Error{Error: err.Error()})
			default:
				writeJSON(w, http.StatusOK, rep)
			}
		})
	}
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
