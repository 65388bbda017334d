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
	// Where the agent gets a fresh token to renew the registration before
	// it expires: TokenFile is re-read (automation keeps it fresh), or the
	// user's token cache in TokenCacheDir is refreshed silently. With
	// neither, the session ends when the registration expires.
	TokenFile     string `json:"token_file,omitempty"`
	TokenCacheDir string `json:"token_cache_dir,omitempty"`
	// RotateKey makes a new device key for this registration (a fresh
	// login); the device keeps its addresses.
	RotateKey bool `json:"rotate_key,omitempty"`
}

// Overlap is a pushed prefix overlapping a route of the machine's own.
type Overlap struct {
	Pushed string `json:"pushed"`
	Local  string `json:"local"`
	Winner string `json:"winner"` // "lan" or "tunnel"
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
	FullTunnel       bool       `json:"full_tunnel,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
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
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// ErrNoAgent means nothing answers on the socket.
var ErrNoAgent = errors.New("no agent running")

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
			return fmt.Errorf("%w (%s)", ErrNoAgent, c.socket)
		}
		return fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
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

// Handler serves the control API over h.
type Handler interface {
	Status() Status
	Up(ctx context.Context, req UpRequest) (Status, error)
	Down(ctx context.Context) (Status, error)
}

// NewServer returns the HTTP handler of the control API for h. after, when
// set, runs once a response to /v1/down has been written.
func NewServer(h Handler, afterDown func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h.Status())
	})
	mux.HandleFunc("POST /v1/up", func(w http.ResponseWriter, r *http.Request) {
		var req UpRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: "bad up request: " + err.Error()})
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
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
