// Package api holds the wire types shared by the vpn client and the gateway.
// It has no server logic so the client can import it without pulling the
// gateway in. Adding optional fields is compatible; renaming or removing one
// is an APIVersion bump.
package api

import "time"

// APIVersion is served in the discovery document; clients refuse a gateway
// whose major version they do not know.
const APIVersion = "1"

// Paths of the gateway API.
const (
	PathDiscovery = "/.well-known/vpn"
	PathPeers     = "/api/v1/peers"
	PathPeerSelf  = "/api/v1/peers/self"
	PathHealth    = "/healthz"
)

// Discovery is GET /.well-known/vpn: what a client needs to log in, given only
// the gateway URL.
type Discovery struct {
	Issuer     string   `json:"issuer"`
	ClientID   string   `json:"client_id"`
	Scopes     []string `json:"scopes"`
	APIVersion string   `json:"api_version"`
}

// RegisterRequest is the body of POST /api/v1/peers. The private key never
// leaves the device: only its public half is sent.
type RegisterRequest struct {
	PublicKey string `json:"public_key"` // base64 WireGuard public key
	Hostname  string `json:"hostname"`
	OS        string `json:"os"`
	// Network picks one network when the user's groups match several.
	Network string `json:"network,omitempty"`
}

// PeerConfig is what the gateway answers to a registration and to
// GET /api/v1/peers/self: everything the client needs to bring the tunnel up.
type PeerConfig struct {
	PeerID string `json:"peer_id"`
	// Network is the name of the network (group) the peer joined.
	Network string `json:"network,omitempty"`
	// Addresses are the client's tunnel addresses as host prefixes
	// ("100.64.0.2/32", "fd00:64::2/128"): stable per (user, network).
	Addresses           []string    `json:"addresses"`
	DNS                 []string    `json:"dns"`
	MTU                 int         `json:"mtu"`
	Gateway             GatewayPeer `json:"gateway"`
	PersistentKeepalive int         `json:"persistent_keepalive"` // seconds, 0 = off
	ExpiresAt           time.Time   `json:"expires_at"`
	// User is the token subject and, when known, the e-mail the gateway saw.
	User  string `json:"user,omitempty"`
	Email string `json:"email,omitempty"`
}

// GatewayPeer describes the gateway's side of the tunnel.
type GatewayPeer struct {
	PublicKey string `json:"public_key"`
	// Endpoint is host:port; an IPv6 literal is bracketed ("[2001:db8::1]:51820").
	Endpoint string `json:"endpoint"`
	// AllowedIPs are the prefixes the client routes into the tunnel.
	AllowedIPs []string `json:"allowed_ips"`
	// Addresses are the gateway's own tunnel addresses; the client pings one
	// of them to prove that packets cross the tunnel before `vpn up` returns.
	Addresses []string `json:"addresses,omitempty"`
}

// Error is the JSON body of every non-2xx answer.
type Error struct {
	// Error is a stable machine-readable code, e.g. "invalid_token".
	Error string `json:"error"`
	// Message is a human sentence naming what was wrong.
	Message string `json:"message"`
	// Networks lists the networks the caller may choose from when the
	// request was ambiguous (error "network_required").
	Networks []string `json:"networks,omitempty"`
}

// Error codes used by the gateway.
const (
	ErrBadRequest      = "bad_request"      // 400
	ErrInvalidToken    = "invalid_token"    // 401
	ErrForbidden       = "forbidden"        // 403: in no configured network's group
	ErrNetworkRequired = "network_required" // 409: several networks match, pick one
	ErrNotFound        = "not_found"        // 404
	ErrConflict        = "conflict"         // 409
	ErrPoolExhausted   = "pool_exhausted"   // 503
	ErrInternal        = "internal"         // 500
)
