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
	PathNetworks  = "/api/v1/networks"
	PathHealth    = "/healthz"
)

// Discovery is GET /.well-known/vpn: what a client needs to log in, given only
// the gateway URL.
type Discovery struct {
	Issuer     string   `json:"issuer"`
	ClientID   string   `json:"client_id"`
	Scopes     []string `json:"scopes"`
	APIVersion string   `json:"api_version"`
	// Version is the gateway software's version (internal/version), for
	// people and `vpn status`; compatibility is decided by APIVersion.
	Version string `json:"version,omitempty"`
}

// NetworkList is GET /api/v1/networks: the networks the caller's token lets
// it join, with each network's WireGuard public key, which a registration is
// sealed to. Subject is the token's subject as the gateway verified it; the
// registration binds to it.
type NetworkList struct {
	Subject  string        `json:"subject"`
	Networks []NetworkInfo `json:"networks"`
}

// NetworkInfo is one network a caller may join.
type NetworkInfo struct {
	Name string `json:"name"`
	// PublicKey is the network's WireGuard public key (base64).
	PublicKey string `json:"public_key"`
	Endpoint  string `json:"endpoint"`
}

// RegisterRequest is the body of POST /api/v1/peers. The private key never
// leaves the device: the request proves the device holds it by sealing
// RegisterClaims with it (see SealRegistration).
type RegisterRequest struct {
	PublicKey string `json:"public_key"` // base64 WireGuard public key of the device
	// Network picks one network when the user's groups match several; the
	// request is sealed to that network's key.
	Network string `json:"network,omitempty"`
	// Nonce (24 bytes, base64) is fresh per request: the gateway refuses
	// one it has seen within the validity window.
	Nonce string `json:"nonce"`
	// Sealed is the NaCl box (base64) of the claims, from the device's key
	// to the network's key.
	Sealed string `json:"sealed"`
}

// RegisterClaims are what the device vouches for with its key.
type RegisterClaims struct {
	// Subject must be the subject of the bearer token: a sealed request
	// cannot be reused with someone else's token.
	Subject string `json:"sub"`
	Network string `json:"network"`
	// DeviceID names the device (kept in its state dir): a device keeps
	// its addresses when it rotates its key.
	DeviceID string `json:"device_id"`
	Hostname string `json:"hostname"`
	OS       string `json:"os"`
	// IssuedAt (Unix seconds) must be within RegistrationWindow of the
	// gateway's clock.
	IssuedAt int64 `json:"iat"`
}

// SealedSecret is a 32-byte secret (the session's preshared key) in a NaCl
// box from the network's key to the device's key: only the device can read it.
type SealedSecret struct {
	Nonce  string `json:"nonce"`
	Sealed string `json:"sealed"`
}

// PeerConfig is what the gateway answers to a registration and to
// GET /api/v1/peers/self: everything the client needs to bring the tunnel up.
type PeerConfig struct {
	PeerID string `json:"peer_id"`
	// DeviceID is the device the peer belongs to.
	DeviceID string `json:"device_id,omitempty"`
	// Network is the name of the network (group) the peer joined.
	Network string `json:"network,omitempty"`
	// Addresses are the client's tunnel addresses as host prefixes
	// ("100.64.0.2/32", "fd00:64::2/128"): stable per (user, device, network).
	Addresses []string `json:"addresses"`
	// DNS are the network's resolvers (addresses inside the tunnel) and
	// DNSDomains its routing domains: only names under them go to DNS,
	// unless DNSDomains is empty and the client captures all traffic.
	// Older clients ignore both (dns_domains is optional).
	DNS                 []string    `json:"dns"`
	DNSDomains          []string    `json:"dns_domains,omitempty"`
	MTU                 int         `json:"mtu"`
	Gateway             GatewayPeer `json:"gateway"`
	PersistentKeepalive int         `json:"persistent_keepalive"` // seconds, 0 = off
	ExpiresAt           time.Time   `json:"expires_at"`
	// Session is the preshared key of this registration, sealed to the
	// device's key; it is replaced at every registration, so a leaked
	// device key alone does not get in once the session ends. Only the
	// answer to a registration carries it.
	Session *SealedSecret `json:"session,omitempty"`
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
	// Version is the gateway software's version, as in the discovery
	// document: `vpn status` shows it next to the client's.
	Version string `json:"version,omitempty"`
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
	ErrInvalidProof    = "invalid_proof"    // 401: the sealed body does not prove the key, or is replayed or stale
	ErrDeviceLimit     = "device_limit"     // 409: the user has the most devices allowed
	ErrInternal        = "internal"         // 500
	ErrRateLimited     = "rate_limited"     // 429: too many registrations; Retry-After says when to try again
)
