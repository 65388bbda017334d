package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/version"
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
	mux.HandleFunc("GET "+api.PathNetworks, g.networksOf)
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
			Version:    version.String(),
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
	if n := len(strings.TrimSpace(raw)); n > MaxTokenBytes {
		// Refused unread: verifying (parsing, a key fetch for an unknown
		// kid) costs the gateway more than sending costs the client.
		g.metrics.Refused.WithLabelValues("token_too_large").Inc()
		g.log.Info("token refused", "remote", r.RemoteAddr, "err", "too large", "bytes", n)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeErr(w, http.StatusUnauthorized, api.ErrInvalidToken, fmt.Sprintf("bearer token is %d bytes; the gateway accepts at most %d", n, MaxTokenBytes))
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

// maxDevicesPerUser bounds the addresses one user holds in a network, so
// that inventing device ids cannot drain a pool.
const maxDevicesPerUser = 16

// networks answers GET /api/v1/networks: the networks the caller may join
// and their public keys, which registrations are sealed to.
func (g *Gateway) networksOf(w http.ResponseWriter, r *http.Request) {
	id := g.authenticate(w, r)
	if id == nil {
		return
	}
	out := api.NetworkList{Subject: id.Subject, Networks: []api.NetworkInfo{}}
	for _, n := range g.cfg.Networks {
		if slices.Contains(id.Groups, n.Group) {
			nw := g.networks[n.Name]
			out.Networks = append(out.Networks, api.NetworkInfo{Name: n.Name, PublicKey: nw.pubKey.String(), Endpoint: g.cfg.EndpointFor(n)})
		}
	}
	if len(out.Networks) == 0 {
		g.pickNetwork(w, id, "") // answers 403 naming the groups
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) register(w http.ResponseWriter, r *http.Request) {
	// Per source before the token is even looked at, per user after.
	lim := g.guard
	if lim == nil { // a Gateway not started by Serve (tests): no limits
		lim = &guards{}
	}
	src := remoteAddr(r.RemoteAddr)
	if ok, retry := lim.source.take(sourceKey(src).String(), g.now()); !ok {
		g.metrics.Refused.WithLabelValues("rate_source").Inc()
		g.log.Info("registration rate-limited", "remote", r.RemoteAddr, "retry_after", retry)
		tooMany(w, "from "+sourceKey(src).String(), retry)
		return
	}
	id := g.authenticate(w, r)
	if id == nil {
		return
	}
	if ok, retry := lim.user.take(id.Subject, g.now()); !ok {
		g.metrics.Refused.WithLabelValues("rate_user").Inc()
		g.log.Info("registration rate-limited", "user", display(id), "remote", r.RemoteAddr, "retry_after", retry)
		tooMany(w, "for "+display(id), retry)
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
	devicePub, err := api.ParseKey(req.PublicKey)
	if err != nil {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, "public_key: "+err.Error())
		return
	}
	if req.Nonce == "" || req.Sealed == "" {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, "nonce and sealed are required: a registration is sealed with the device's key (is the client older than the gateway?)")
		return
	}
	nw := g.pickNetwork(w, id, req.Network)
	if nw == nil {
		return
	}
	if len(id.Groups) > store.MaxStoredGroups {
		writeErr(w, http.StatusForbidden, api.ErrForbidden, fmt.Sprintf("the token carries %d groups, more than the %d the gateway keeps per device; ask the identity provider's administrator to send fewer (a groups claim filter)", len(id.Groups), store.MaxStoredGroups))
		return
	}
	ctx := r.Context()
	claims, err := g.checkProof(ctx, req, devicePub, nw, id)
	var proofErr *api.ProofError
	if err != nil && !errors.As(err, &proofErr) {
		g.internal(w, "check the registration proof", err)
		return
	}
	if err != nil {
		g.log.Info("registration proof refused", "user", display(id), "network", nw.cfg.Name, "remote", r.RemoteAddr, "err", err)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_proof"`)
		writeErr(w, http.StatusUnauthorized, api.ErrInvalidProof, err.Error())
		return
	}
	if !api.ValidDeviceID(claims.DeviceID) {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, fmt.Sprintf("device_id: %q must be 1-64 letters, digits, '-' or '_'", claims.DeviceID))
		return
	}
	if err := api.CheckHostname(claims.Hostname); err != nil {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, err.Error())
		return
	}
	if err := api.CheckOS(claims.OS); err != nil {
		writeErr(w, http.StatusBadRequest, api.ErrBadRequest, err.Error())
		return
	}
	alloc, err := g.store.AllocateDevice(ctx, store.AllocRequest{Subject: id.Subject, Network: nw.cfg.Name, Device: claims.DeviceID,
		Pool4: nw.cfg.Pool4(), Pool6: nw.cfg.Pool6(), MaxDevices: maxDevicesPerUser, PublicKey: req.PublicKey})
	switch {
	case errors.Is(err, store.ErrPoolExhausted):
		writeErr(w, http.StatusServiceUnavailable, api.ErrPoolExhausted, err.Error())
		return
	case errors.Is(err, store.ErrDeviceLimit):
		writeErr(w, http.StatusConflict, api.ErrDeviceLimit, deviceLimitMessage(id, nw.cfg.Name))
		return
	case err != nil:
		g.internal(w, "allocate", err)
		return
	}
	psk, err := wgtypes.GenerateKey()
	if err != nil {
		g.internal(w, "make session key", err)
		return
	}
	session, err := api.SealSecret(psk, nw.privKey, devicePub)
	if err != nil {
		g.internal(w, "seal session key", err)
		return
	}
	now := g.now()
	// The token's groups are kept with the peer: access rules by group
	// are decided from them, now and at every reload until it renews.
	p := store.Peer{ID: newID(), Subject: id.Subject, Email: id.Email, Network: nw.cfg.Name, Device: claims.DeviceID, PublicKey: req.PublicKey,
		PresharedKey: psk.String(), Hostname: claims.Hostname, OS: claims.OS, CreatedAt: now, ExpiresAt: now.Add(g.cfg.KeyTTL), Addr: alloc,
		Groups: id.Groups}
	unlock := g.lockDevice(p)
	old, err := g.store.PutPeer(ctx, p)
	if err == nil {
		err = g.setPeer(nw, p, old)
		if err != nil {
			err = fmt.Errorf("configure device: %w", err)
		}
	}
	unlock()
	if errors.Is(err, store.ErrConflict) {
		writeErr(w, http.StatusConflict, api.ErrConflict, err.Error())
		return
	}
	if err != nil {
		g.internal(w, "register peer", err)
		return
	}
	action, detail := "register", ""
	if old != nil {
		action = "renew"
		if old.PublicKey != p.PublicKey {
			action, detail = "rotate", " replacing key "+old.PublicKey
		}
	}
	g.audit.Record(ctx, store.AuditRecord{Actor: id.Subject, Action: registerAction(p, old), Subject: id.Subject, Email: id.Email, Network: nw.cfg.Name, PeerID: p.ID, Remote: r.RemoteAddr,
		Detail: fmt.Sprintf("device %s key %s%s host %q os %q addresses %s %s, expires %s", p.Device, p.PublicKey, detail, p.Hostname, p.OS, alloc.V4, alloc.V6, rfc3339(p.ExpiresAt))})
	g.log.Info("peer "+action, "user", display(id), "network", nw.cfg.Name, "device", p.Device, "peer", p.ID, "v4", alloc.V4, "v6", alloc.V6)
	pc := g.peerConfig(nw, p, id)
	pc.Session = &session
	writeJSON(w, http.StatusOK, pc)
}

// checkProof opens the sealed registration and checks what it binds: the
// token's subject, the network, the time and a nonce never seen before.
func (g *Gateway) checkProof(ctx context.Context, req api.RegisterRequest, devicePub api.Key, nw *network, id *auth.Identity) (*api.RegisterClaims, error) {
	claims, nonce, err := api.OpenRegistration(req, devicePub, nw.privKey)
	if err != nil {
		return nil, err
	}
	if claims.Subject != id.Subject {
		return nil, &api.ProofError{Reason: fmt.Sprintf("sealed for subject %q, but the token is for %q", claims.Subject, id.Subject)}
	}
	if claims.Network != nw.cfg.Name {
		return nil, &api.ProofError{Reason: fmt.Sprintf("sealed for network %q, not %q", claims.Network, nw.cfg.Name)}
	}
	now := g.now()
	issued := time.Unix(claims.IssuedAt, 0)
	if d := now.Sub(issued); d > api.RegistrationWindow || d < -api.RegistrationWindow {
		return nil, &api.ProofError{Reason: fmt.Sprintf("issued at %s, more than %s from the gateway's clock (%s)", issued.UTC().Format(time.RFC3339), api.RegistrationWindow, now.UTC().Format(time.RFC3339))}
	}
	err = g.store.UseNonce(ctx, base64.StdEncoding.EncodeToString(nonce[:]), issued.Add(api.RegistrationWindow+time.Minute))
	if errors.Is(err, store.ErrReplay) {
		return nil, &api.ProofError{Reason: "replayed: this request's nonce was used before"}
	}
	if err != nil {
		return nil, err
	}
	return &claims, nil
}

// lockDevice serialises the store and device changes of one (user, network,
// device), so that a registration and the expiry timer, or two
// registrations of one device, never leave the WireGuard device out of step
// with the store. Different devices proceed in parallel.
func (g *Gateway) lockDevice(p store.Peer) (unlock func()) {
	h := fnv.New32a()
	h.Write([]byte(p.Network + "\x00" + p.Subject + "\x00" + p.Device))
	m := &g.deviceLocks[h.Sum32()%uint32(len(g.deviceLocks))]
	m.Lock()
	return m.Unlock
}

func (g *Gateway) peerConfig(nw *network, p store.Peer, id *auth.Identity) api.PeerConfig {
	pc := api.PeerConfig{
		PeerID:              p.ID,
		DeviceID:            p.Device,
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
			Version:   version.String(),
		},
	}
	for _, a := range []netip.Addr{p.Addr.V4, p.Addr.V6} {
		if a.IsValid() {
			pc.Addresses = append(pc.Addresses, netip.PrefixFrom(a, a.BitLen()).String())
		}
	}
	if servers, domains := nw.cfg.PushedDNS(); len(servers) > 0 {
		pc.DNS, pc.DNSDomains = servers, domains
	}
	for _, a := range nw.cfg.Allow {
		pc.Gateway.AllowedIPs = append(pc.Gateway.AllowedIPs, a.String())
	}
	// What the user's access rules widen to (beyond allow) is routed into
	// the tunnel too; a widening rule added later reaches the client at
	// its next registration.
	for _, a := range nw.cfg.PolicyFor(p.Subject, p.Email, p.Groups).Widened() {
		pc.Gateway.AllowedIPs = append(pc.Gateway.AllowedIPs, a.String())
	}
	for _, a := range nw.cfg.GatewayAddrs() {
		host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
		pc.Gateway.AllowedIPs = append(pc.Gateway.AllowedIPs, host.String())
		pc.Gateway.Addresses = append(pc.Gateway.Addresses, a.Addr().String())
	}
	return pc
}

// self finds the caller's peer: in ?network= (or the only one) and of
// ?device= (or the only one).
func (g *Gateway) self(w http.ResponseWriter, r *http.Request) (*auth.Identity, *network, *store.Peer) {
	id := g.authenticate(w, r)
	if id == nil {
		return nil, nil, nil
	}
	nw := g.pickNetwork(w, id, r.URL.Query().Get("network"))
	if nw == nil {
		return nil, nil, nil
	}
	ctx := r.Context()
	var p *store.Peer
	var err error
	if device := r.URL.Query().Get("device"); device != "" {
		p, err = g.store.DevicePeer(ctx, id.Subject, nw.cfg.Name, device)
	} else {
		var all []store.Peer
		all, err = g.store.UserPeers(ctx, id.Subject, nw.cfg.Name)
		switch {
		case err != nil:
		case len(all) == 0:
			err = store.ErrNotFound
		case len(all) > 1:
			var devices []string
			for _, p := range all {
				devices = append(devices, p.Device)
			}
			writeErr(w, http.StatusConflict, api.ErrConflict, fmt.Sprintf("%s has %d devices in network %s (%s): name one with ?device=", display(id), len(all), nw.cfg.Name, strings.Join(devices, ", ")))
			return nil, nil, nil
		default:
			p = &all[0]
		}
	}
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
	unlock := g.lockDevice(*p)
	err := g.removePeer(nw, p.PublicKey)
	if err == nil {
		_, err = g.store.DeletePeer(r.Context(), p.ID, store.StateDeleted)
	}
	unlock()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		g.internal(w, "delete peer", err)
		return
	}
	g.audit.Record(r.Context(), store.AuditRecord{Actor: id.Subject, Action: "delete", Subject: id.Subject, Email: id.Email, Network: nw.cfg.Name, PeerID: p.ID, Remote: r.RemoteAddr, Detail: "device " + p.Device + " host " + p.Hostname})
	g.log.Info("peer deleted", "user", display(id), "network", nw.cfg.Name, "peer", p.ID, "device", p.Device)
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) internal(w http.ResponseWriter, what string, err error) {
	g.log.Error(what, "err", err)
	writeErr(w, http.StatusInternalServerError, api.ErrInternal, what+" failed; see the gateway log")
}
