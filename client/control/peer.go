package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// DefaultSocket is the agent's socket for the default state dir: in
// /run/clearpath, root:clearpath 0660, so members of the clearpath group
// can drive the agent and nobody else can open it.
const DefaultSocket = "/run/clearpath/agent.sock"

// DefaultStateDir is the client's state dir when none is given.
const DefaultStateDir = "/var/lib/clearpath"

// SocketEnv overrides the socket path (tests, a second agent).
const SocketEnv = "CLEARPATH_SOCKET"

// SocketFor returns the control socket of the agent of stateDir: $CLEARPATH_SOCKET
// when set, DefaultSocket for the default state dir, else agent.sock inside
// stateDir (an agent run with --state-dir, as the tests do).
func SocketFor(stateDir string) string {
	if s := envvar.Get(strings.TrimPrefix(SocketEnv, envvar.Prefix)); s != "" {
		return s
	}
	if filepath.Clean(stateDir) == DefaultStateDir {
		return DefaultSocket
	}
	return SocketPath(stateDir)
}

// DefaultGroup is the group whose members may drive the agent.
const DefaultGroup = "clearpath"

// Peer is the process at the other end of a control connection, as the
// kernel reports it (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS).
type Peer struct {
	UID, GID uint32
	PID      int32
	Groups   []uint32 // supplementary groups
}

func (p Peer) String() string { return fmt.Sprintf("uid %d gid %d pid %d", p.UID, p.GID, p.PID) }

// InGroup reports whether gid is the peer's primary or a supplementary group.
func (p Peer) InGroup(gid uint32) bool {
	if p.GID == gid {
		return true
	}
	for _, g := range p.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

type peerKey struct{}

// ConnContext is http.Server.ConnContext for the control socket: it reads
// the connecting process's credentials once per connection.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	p, err := peerOf(uc)
	if err != nil {
		return context.WithValue(ctx, peerKey{}, err)
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the credentials ConnContext stored.
func PeerFrom(ctx context.Context) (Peer, error) {
	switch v := ctx.Value(peerKey{}).(type) {
	case Peer:
		return v, nil
	case error:
		return Peer{}, fmt.Errorf("read the caller's credentials: %w", v)
	}
	return Peer{}, errors.New("the caller's credentials are unknown")
}

// Policy decides, per request, what a caller may do. Root may do anything;
// members of Group may connect (choosing among the networks the gateway
// offers them), disconnect and read the status; only root may name files,
// interfaces or a server other than the configured one. Everyone else is
// refused.
type Policy struct {
	// Group is the gid of the operators' group; HasGroup says it exists.
	Group     uint32
	HasGroup  bool
	GroupName string
	// Server returns the server members may connect to ("" none yet).
	Server func() string
	// Open lets every caller in (in-process fakes in tests only).
	Open bool
}

// DeniedError is a refusal by Policy (HTTP 403).
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return e.Reason }

// ErrNoAccess wraps every refusal the client sees: the socket's mode or the
// agent's policy.
var ErrNoAccess = errors.New("the agent runs as root; join the clearpath group or use sudo (Linux: sudo usermod -aG clearpath $USER, macOS: sudo dseditgroup -o edit -a $USER -t user clearpath; then log in again)")

// Allow returns nil when peer may do op ("status", "up", "down", "restore",
// "dns-repoint"); req is the
// decoded body of an up.
func (pol Policy) Allow(peer Peer, op string, req *UpRequest) error {
	if pol.Open || peer.UID == 0 {
		return nil
	}
	name := pol.GroupName
	if name == "" {
		name = DefaultGroup
	}
	if !pol.HasGroup || !peer.InGroup(pol.Group) {
		return &DeniedError{fmt.Sprintf("permission denied for %s: not root and not a member of group %s; %v", peer, name, ErrNoAccess)}
	}
	if op != "up" || req == nil {
		return nil
	}
	if req.TokenFile != "" {
		return &DeniedError{"permission denied: only root may name a token file (the agent would read it as root); send the token itself"}
	}
	if req.Interface != "" {
		return &DeniedError{"permission denied: only root may name the tunnel interface"}
	}
	configured := ""
	if pol.Server != nil {
		configured = pol.Server()
	}
	if configured == "" {
		return &DeniedError{"permission denied: no server is configured for group " + name + " yet; root sets it (vpn agent --server URL, or a first `sudo vpn up --server URL`)"}
	}
	if !SameServer(req.Server, configured) {
		return &DeniedError{fmt.Sprintf("permission denied: only root may connect to a server other than the configured one (%s)", configured)}
	}
	return nil
}

// SameServer compares two gateway URLs as the agent dials them (scheme and
// host case-insensitively, a trailing slash ignored).
func SameServer(a, b string) bool {
	norm := func(s string) string {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil {
			return s
		}
		u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		u.Path = strings.TrimRight(u.Path, "/")
		return u.String()
	}
	return norm(a) == norm(b)
}

// MinMTU and MaxMTU bound an up request's tunnel MTU: IPv4's minimum
// (576; below 1280 the tunnel carries IPv4 only) and jumbo frames.
const (
	MinMTU = 576
	MaxMTU = 9000
)

// MaxTimeout bounds an up request's timeout.
const MaxTimeout = 5 * time.Minute

// validate checks an up request's fields before any policy or action.
func (r *UpRequest) validate() error {
	if r.Timeout < 0 || r.Timeout > MaxTimeout {
		return fmt.Errorf("timeout %s out of range (0 to %s)", r.Timeout, MaxTimeout)
	}
	if r.MTU != 0 && (r.MTU < MinMTU || r.MTU > MaxMTU) {
		return fmt.Errorf("mtu %d out of range (%d to %d)", r.MTU, MinMTU, MaxMTU)
	}
	if r.MTU != 0 && r.AutoMTU {
		return errors.New("mtu and auto_mtu both set: choose one")
	}
	if len(r.Token) > MaxToken || len(r.RefreshToken) > MaxToken {
		return errors.New("token longer than 64 KiB")
	}
	if strings.ContainsAny(r.Token+r.RefreshToken, " \t\r\n") {
		return errors.New("token with white space in it")
	}
	for name, v := range map[string]string{"server": r.Server, "network": r.Network, "interface": r.Interface, "hostname": r.Hostname, "token_file": r.TokenFile} {
		if len(v) > 4096 || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%s is too long or holds a NUL byte", name)
		}
	}
	return nil
}

func allowed(w http.ResponseWriter, r *http.Request, pol Policy, op string, req *UpRequest) bool {
	if pol.Open {
		return true
	}
	peer, err := PeerFrom(r.Context())
	if err != nil {
		writeJSON(w, http.StatusForbidden, Error{Error: "permission denied: " + err.Error()})
		return false
	}
	if err := pol.Allow(peer, op, req); err != nil {
		writeJSON(w, http.StatusForbidden, Error{Error: err.Error()})
		return false
	}
	return true
}
