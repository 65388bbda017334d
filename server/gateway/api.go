package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

const maxBody = 64 << 10

// Handler is the gateway's HTTP API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathDiscovery, g.discovery)
	mux.HandleFunc("GET "+api.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		if !g.verifier.Ready() {
			writeErr(w, http.StatusServiceUnavailable, "not_ready", "identity provider not reachable yet")
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST "+api.PathPeers, g.register)
	mux.HandleFunc("GET "+api.PathPeerSelf, g.getSelf)
	mux.HandleFunc("DELETE "+api.PathPeerSelf, g.deleteSelf)
	return mux
}

func (g *Gateway) discovery(w http.ResponseWriter, r *http.Request) {
	DiscoveryHandler(g.cfg.OIDC).ServeHTTP(w, r)
}

// DiscoveryHandler serves GET /.well-known/vpn: what a client needs to log
// in, given only the gateway's URL.
func DiscoveryHandler(o config.OIDC) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Discovery{
			Issuer:     o.Issuer,
			ClientID:   o.ClientID,
			Scopes:     []string{"openid", "profile", "email", "groups", "offline_access"},
			APIVersion: api.APIVersion,
		})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.Error{Error: code, Message: msg})
}

// authenticate verifies the bearer token; on failure it has answered.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request) *auth.Identity {
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer`)
		writeErr(w, http.StatusUnauthorized, api.ErrInvalidToken, "missing bearer token (Authorization: Bearer <token>)")
		return nil
	}
	id, err := g.verifier.Verify(r.Context(), strings.TrimSpace(raw))
	if errors.Is(err, auth.ErrNotReady) {
		writeErr(w, http.StatusServiceUnavailable, "not_ready", "the gateway cannot reach its identity provider yet; retry shortly")
		return nil
	}
	if err != nil {
		g.log.Info("token refused", "remote", r.RemoteAddr, "err", err)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeErr(w, http.StatusUnauthorized, api.ErrInvalidToken, err.Error())
		return nil
	}
	if !g.admit(w, r, id, strings.TrimSpace(raw)) { // admission.go: disabled users, group changes, login audit
		return nil
	}
	return id
}

// pickNetwork chooses the network for id: the one its groups allow, or the
// named one among several. On failure it has answered.
func (g *Gateway) pickNetwork(w http.ResponseWriter, id *auth.Identity, want string) *network {
	var mine []string
	for _, n := range g.cfg.Networks {
		if slices.Contains(id.Groups, n.Group) {
			mine = append(mine, n.Name)
		}
	}
	switch {
	case len(mine) == 0:
		groups := "the token has no groups"
		if len(id.Groups) > 0 {
			groups = "groups: " + strings.Join(id.Groups, ", ")
		}
		writeErr(w, http.StatusForbidden, api.ErrForbidden, fmt.Sprintf("user %s is in no group that has a network on this gateway (%s)", display(id), groups))
		return nil
	case want != "":
		if !slices.Contains(mine, want) {
			writeJSON(w, http.StatusForbidden, api.Error{Error: api.ErrForbidden, Message: fmt.Sprintf("user %s may not join network %q", display(id), want), Networks: mine})
			return nil
		}
		return g.networks[want]
	case len(mine) > 1:
		writeJSON(w, http.StatusConflict, api.Error{Error: api.ErrNetworkRequired, Message: "you belong to several networks; choose one with --network: " + strings.Join(mine, ", "), Networks: mine})
		return nil
	}
	return g.networks[mine[0]]
}

func display(id *auth.Identity) string {
	if id.Email != "" {
		return id.Email
	}
	return id.Subject
}

func (g *Gateway) register(w http.ResponseWriter, r *http.Request) {
	id := g.authenticate(w, r)
	if id == nil {
		return
	}
	var req api.RegisterRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, "request body: "+err.Error())
		return
	}
	if dec.More() {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, "request body: trailing data after the JSON object")
		return
	}
	if err := validateKey(req.PublicKey); err != nil {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, "public_key: "+err.Error())
		return
	}
	if len(req.Hostname) > 255 || len(req.OS) > 64 {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, "hostname or os: too long")
		return
	}
	nw := g.pickNetwork(w, id, req.Network)
	if nw == nil {
		return
	}
	ctx := r.Context()
	alloc, err := g.store.Allocate(ctx, id.Subject, nw.cfg.Name, nw.cfg.Pool4(), nw.cfg.Pool6())
	if errors.Is(err, store.ErrPoolExhausted) {
		writeErr(w, http.StatusServiceUnavailable, api.ErrPoolExhausted, err.Error())
		return
	}
	if err != nil {
		g.internal(w, "allocate", err)
		return
	}
	now := g.now()
	p := store.Peer{ID: newID(), Subject: id.Subject, Email: id.Email, Network: nw.cfg.Name, PublicKey: req.PublicKey,
		Hostname: req.Hostname, OS: req.OS, CreatedAt: now, ExpiresAt: now.Add(g.cfg.KeyTTL), Addr: alloc}
	old, err := g.store.PutPeer(ctx, p)
	if errors.Is(err, store.ErrConflict) {
		writeErr(w, http.StatusConflict, api.ErrConflict, err.Error())
		return
	}
	if err != nil {
		g.internal(w, "store peer", err)
		return
	}
	if err := g.setPeer(nw, p, old); err != nil {
		g.internal(w, "configure device", err)
		return
	}
	g.audit.Record(ctx, store.AuditRecord{Actor: id.Subject, Action: registerAction(p, old), Subject: id.Subject, Email: id.Email, Network: nw.cfg.Name, PeerID: p.ID, Remote: r.RemoteAddr,
		Detail: fmt.Sprintf("key %s host %q os %q addresses %s %s, expires %s", p.PublicKey, p.Hostname, p.OS, alloc.V4, alloc.V6, rfc3339(p.ExpiresAt))})
	g.log.Info("peer registered", "user", display(id), "network", nw.cfg.Name, "peer", p.ID, "v4", alloc.V4, "v6", alloc.V6)
	writeJSON(w, http.StatusOK, g.peerConfig(nw, p, id))
}

func (g *Gateway) peerConfig(nw *network, p store.Peer, id *auth.Identity) api.PeerConfig {
	pc := api.PeerConfig{
		PeerID:              p.ID,
		Network:             nw.cfg.Name,
		DNS:                 []string{},
		MTU:                 nw.cfg.MTU,
		PersistentKeepalive: 25,
		ExpiresAt:           p.ExpiresAt.UTC(),
		User:                p.Subject,
		Email:               p.Email,
		Gateway: api.GatewayPeer{
			PublicKey: nw.pubKey.String(),
			Endpoint:  g.cfg.EndpointFor(nw.cfg),
		},
	}
	for _, a := range []netip.Addr{p.Addr.V4, p.Addr.V6} {
		if a.IsValid() {
			pc.Addresses = append(pc.Addresses, netip.PrefixFrom(a, a.BitLen()).String())
		}
	}
	for _, a := range nw.cfg.Allow {
		pc.Gateway.AllowedIPs = append(pc.Gateway.AllowedIPs, a.String())
	}
	for _, a := range nw.cfg.GatewayAddrs() {
		host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
		pc.Gateway.AllowedIPs = append(pc.Gateway.AllowedIPs, host.String())
		pc.Gateway.Addresses = append(pc.Gateway.Addresses, a.Addr().String())
	}
	return pc
}

func (g *Gateway) self(w http.ResponseWriter, r *http.Request) (*auth.Identity, *network, *store.Peer) {
	id := g.authenticate(w, r)
	if id == nil {
		return nil, nil, nil
	}
	nw := g.pickNetwork(w, id, r.URL.Query().Get("network"))
	if nw == nil {
		return nil, nil, nil
	}
	p, err := g.store.Peer(r.Context(), id.Subject, nw.cfg.Name)
	if errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusNotFound, api.ErrNotFound, fmt.Sprintf("no peer registered for %s in network %s", display(id), nw.cfg.Name))
		return nil, nil, nil
	}
	if err != nil {
		g.internal(w, "read peer", err)
		return nil, nil, nil
	}
	return id, nw, p
}

func (g *Gateway) getSelf(w http.ResponseWriter, r *http.Request) {
	id, nw, p := g.self(w, r)
	if p == nil {
		return
	}
	writeJSON(w, http.StatusOK, g.peerConfig(nw, *p, id))
}

func (g *Gateway) deleteSelf(w http.ResponseWriter, r *http.Request) {
	id, nw, p := g.self(w, r)
	if p == nil {
		return
	}
	if err := g.removePeer(nw, p.PublicKey); err != nil {
		g.internal(w, "remove peer from device", err)
		return
	}
	if _, err := g.store.DeletePeer(r.Context(), p.Subject, p.Network); err != nil {
		g.internal(w, "delete peer", err)
		return
	}
	g.audit.Record(r.Context(), store.AuditRecord{Actor: id.Subject, Action: "delete", Subject: id.Subject, Email: id.Email, Network: nw.cfg.Name, PeerID: p.ID, Remote: r.RemoteAddr, Detail: "host " + p.Hostname})
	g.log.Info("peer deleted", "user", display(id), "network", nw.cfg.Name, "peer", p.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) internal(w http.ResponseWriter, what string, err error) {
	g.log.Error(what, "err", err)
	writeErr(w, http.StatusInternalServerError, api.ErrInternal, what+" failed; see the gateway log")
}

// validateKey checks a base64 WireGuard public key (32 bytes).
func validateKey(s string) error {
	if s == "" {
		return errors.New("required")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("%q is not base64", s)
	}
	if len(b) != 32 {
		return fmt.Errorf("decodes to %d bytes, a WireGuard key has 32", len(b))
	}
	return nil
}
