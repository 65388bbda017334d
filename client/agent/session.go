package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/client/key"
	"github.com/clearpath-vpn/clearpath/client/trust"
	"github.com/clearpath-vpn/clearpath/internal/jwtpeek"
)

// session is the agent's registration with the gateway: what it needs to
// renew it before it expires without touching the tunnel.
type session struct {
	hc       *http.Client // gw's client (to drop connections made during a hold)
	gw       *gwapi.Client
	server   string
	network  string // as registered
	id       string // device id
	hostname string
	key      wgtypes.Key
	src      tokenSource

	peerKey   wgtypes.Key // the gateway's
	addresses []string
	expires   time.Time
	renewAt   time.Time
}

func (a *Agent) newSession(req control.UpRequest) (*session, error) {
	var sessHC *http.Client
	priv, err := key.LoadOrCreate(a.dir)
	if err != nil {
		return nil, err
	}
	id, err := key.DeviceID(a.dir)
	if err != nil {
		return nil, err
	}
	pol := trust.Policy{AllowHTTP: req.AllowHTTP, CAPEM: req.CAPEM, CAFile: "the CA certificate sent by vpn"}
	if _, err := trust.Check(req.Server, pol); err != nil {
		return nil, err
	}
	gw, err := gwapi.New(req.Server)
	if err != nil {
		return nil, err
	}
	hc, err := trust.HTTPClient(pol, 20*time.Second)
	if err != nil {
		return nil, err
	}
	if tr, ok := hc.Transport.(*http.Transport); ok {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: markControl(a.heldEndpoint)}
		tr.DialContext = d.DialContext
	}
	sessHC = hc
	gw = gw.WithHTTPClient(hc)
	host := req.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	return &session{hc: sessHC, gw: gw, server: req.Server, network: req.Network, id: id, hostname: host, key: priv, src: sourceOf(req)}, nil
}

func (s *session) device(priv wgtypes.Key) gwapi.Device {
	return gwapi.Device{Key: priv, ID: s.id, Hostname: s.hostname, OS: runtime.GOOS}
}

// registered records a registration's answer (received at now) and
// schedules the renewal at two thirds of the remaining lifetime.
func (s *session) registered(reg *gwapi.Registration, now time.Time) {
	pc := reg.Config
	s.network = pc.Network
	s.peerKey, _ = wgtypes.ParseKey(pc.Gateway.PublicKey)
	s.addresses = slices.Clone(pc.Addresses)
	s.expires = pc.ExpiresAt
	s.renewAt = now.Add(max(s.expires.Sub(now)*2/3, 5*time.Second))
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// renewWith renews the current session now with the token of req (`vpn
// up` while connected, or `vpn login`), adopting req's token source.
func (a *Agent) renewWith(ctx context.Context, req control.UpRequest) error {
	a.mu.Lock()
	sess := a.sess
	a.mu.Unlock()
	if sess == nil {
		return errors.New("not connected")
	}
	if src := sourceOf(req); src != nil {
		a.renewMu.Lock()
		sess.src = src
		a.renewMu.Unlock()
	}
	return a.renew(ctx, sess, req.Token, req.RotateKey)
}

// renew re-registers the device with token: the gateway answers with the
// same addresses and a new session key, which replaces the old one in
// place; the tunnel is not torn down. With rotate, the device gets a new
// key too (stored once the gateway has it).
func (a *Agent) renew(ctx context.Context, sess *session, token string, rotate bool) (err error) {
	a.renewMu.Lock()
	defer a.renewMu.Unlock()
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.sess != sess {
			return
		}
		if err != nil {
			a.status.RenewError = err.Error()
			return
		}
		now := a.edge.now().UTC()
		exp := sess.expires
		a.status.RenewError = ""
		a.status.RenewedAt, a.status.RenewAt, a.status.ExpiresAt = &now, timePtr(sess.renewAt), &exp
		a.status.Renewals++
		a.status.PublicKey = sess.key.PublicKey().String()
		a.status.TokenSource = sourceName(sess.src)
	}()
	priv := sess.key
	if rotate {
		if priv, err = wgtypes.GeneratePrivateKey(); err != nil {
			return fmt.Errorf("make a new device key: %w", err)
		}
	}
	reg, err := sess.gw.Register(ctx, token, sess.network, sess.device(priv))
	if err != nil {
		return fmt.Errorf("renew registration with %s: %w", sess.server, err)
	}
	pc := reg.Config
	if !slices.Equal(pc.Addresses, sess.addresses) {
		return fmt.Errorf("the gateway moved this device from %v to %v: reconnect (vpn down; vpn up)", sess.addresses, pc.Addresses)
	}
	peer, err := wgtypes.ParseKey(pc.Gateway.PublicKey)
	if err != nil || peer != sess.peerKey {
		return fmt.Errorf("the gateway's key changed (%s): reconnect (vpn down; vpn up)", pc.Gateway.PublicKey)
	}
	a.mu.Lock()
	t := a.tun
	stillOurs := a.sess == sess
	a.mu.Unlock()
	if t == nil || !stillOurs {
		return errors.New("the tunnel went down during the renewal")
	}
	if err := t.UpdateSession(priv, peer, reg.PresharedKey); err != nil {
		return err
	}
	if priv != sess.key {
		if err := key.Store(a.dir, priv); err != nil {
			return err
		}
		sess.key = priv
	}
	sess.registered(reg, a.edge.now())
	a.mu.Lock()
	a.status.PeerID = pc.PeerID
	a.status.GatewayVersion = pc.Gateway.Version // the gateway may have been upgraded since
	a.mu.Unlock()
	a.log.Info("registration renewed", "peer", pc.PeerID, "rotated", rotate, "addresses", pc.Addresses, "expires", pc.ExpiresAt, "next", sess.renewAt)
	return nil
}

// renewLoop renews the session before it expires, getting tokens from the
// session's source, retrying failures with backoff until the expiry.
func (a *Agent) renewLoop(ctx context.Context, sess *session) {
	retry := 5 * time.Second
	a.renewMu.Lock()
	next := sess.renewAt
	a.renewMu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.edge.after(next.Sub(a.edge.now())):
		}
		a.renewMu.Lock()
		src, due := sess.src, sess.renewAt
		a.renewMu.Unlock()
		if a.edge.now().Before(due) { // renewed meanwhile (vpn up, vpn login)
			next = due
			continue
		}
		err := errors.New("no token source: run `vpn up` again before the registration expires")
		if src != nil {
			var tok string
			if tok, err = src.Token(ctx); err == nil {
				err = a.renew(ctx, sess, tok, false)
			}
		}
		if err == nil {
			retry = 5 * time.Second
			a.renewMu.Lock()
			next = sess.renewAt
			a.renewMu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		if a.sess == sess {
			a.status.RenewError = err.Error()
		}
		a.mu.Unlock()
		a.renewMu.Lock()
		expires := sess.expires
		a.renewMu.Unlock()
		if !a.edge.now().Before(expires) {
			a.expire(sess, err)
			return
		}
		a.log.Warn("renewal failed, retrying", "err", err, "retry_in", retry, "expires", expires)
		next = a.edge.now().Add(retry)
		if next.After(expires) {
			next = expires // the last attempt, then the defined end
		}
		retry = min(retry*2, time.Minute)
	}
}

// expire ends a session whose registration expired unrenewed: the gateway
// no longer carries its traffic. By default the tunnel goes down and
// routing is restored (the machine is online again, outside the tunnel);
// with fail-closed, a full tunnel keeps its routes, so nothing leaks
// outside it, and the status says so. The agent keeps running either way,
// so `vpn status` and the tray can tell the user why.
func (a *Agent) expire(sess *session, cause error) {
	a.mu.Lock()
	if a.sess != sess {
		a.mu.Unlock()
		return
	}
	st := a.status
	a.mu.Unlock()
	// Whether the tunnel is full is what the kernel has (Status reads it);
	// a.status never holds it, so the flag alone never blocked before.
	st.FullTunnel = a.Status().FullTunnel
	why := fmt.Sprintf("the registration expired at %s and could not be renewed (%v)", sess.expires.UTC().Format(time.RFC3339), cause)
	if st.FailClosed && st.FullTunnel {
		a.mu.Lock()
		a.status.State = control.StateBlocked
		a.status.Error = why + "; fail-closed: all traffic stays blocked in the dead tunnel. Run `vpn up` to reconnect or `vpn down` to restore routing"
		a.mu.Unlock()
		a.log.Error("registration expired: fail-closed, keeping the full tunnel's block", "expired", sess.expires, "err", cause)
		return
	}
	rep := a.teardown()
	a.mu.Lock()
	a.status = control.Status{State: control.StateDown, Server: st.Server, Network: st.Network, ExpiresAt: st.ExpiresAt,
		Error: why + "; the tunnel is down and routing is restored. Run `vpn up` to reconnect"}
	if rep != nil && len(rep.Problems) > 0 {
		a.status.Error += fmt.Sprint(" (restore: ", rep.Problems, ")")
	}
	a.mu.Unlock()
	a.log.Error("registration expired: tunnel down, routing restored", "expired", sess.expires, "err", cause)
}

// tokenSource gives the renewal loop a valid token.
type tokenSource interface {
	Token(ctx context.Context) (string, error)
	String() string
}

func sourceName(s tokenSource) string {
	if s == nil {
		return ""
	}
	return s.String()
}

func sourceOf(req control.UpRequest) tokenSource {
	switch {
	case req.TokenFile != "":
		return fileSource(req.TokenFile)
	case req.RefreshToken != "":
		return &refreshSource{server: req.Server, refresh: req.RefreshToken, caPEM: req.CAPEM, issuer: jwtpeek.Issuer(req.Token)}
	}
	return nil
}

// fileSource re-reads a token file that automation keeps fresh. Only a root
// caller may name one (control.Policy): the agent reads it as root.
type fileSource string

func (f fileSource) String() string { return "file " + string(f) }

func (f fileSource) Token(context.Context) (string, error) {
	return control.ReadTokenFile(string(f))
}

// refreshSource holds the refresh token the user's process handed over
// (bytes over the socket, never a path): the agent trades it at the
// identity provider for a fresh ID token when a renewal is due and keeps
// the rotated refresh token in memory only. It never reads or writes the
// user's token cache; the user's own `vpn` refreshes that cache in the
// user's process (and logs in again if the provider rotated the refresh
// token the cache holds).
type refreshSource struct {
	server string
	caPEM  []byte // extra roots for the provider, from the request
	issuer string // iss of the token the session began with: the pin

	mu      sync.Mutex
	refresh string
}

func (r *refreshSource) String() string { return "refresh token (in memory)" }

func (r *refreshSource) Token(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hc, err := trust.HTTPClient(trust.Policy{CAPEM: r.caPEM}, 20*time.Second)
	if err != nil {
		return "", err
	}
	client, err := auth.NewWithHTTP(ctx, r.server, io.Discard, hc)
	if err != nil {
		return "", err
	}
	// The refresh token goes only to the identity provider the session's
	// token came from: a gateway that names another one now is refused.
	if r.issuer != "" && strings.TrimRight(client.Discovery.Issuer, "/") != strings.TrimRight(r.issuer, "/") {
		return "", fmt.Errorf("the gateway now names identity provider %s, not %s that issued this session's token; refusing to send the refresh token there (run `vpn login`, with --reset-server if the change is expected)", client.Discovery.Issuer, r.issuer)
	}
	nt, err := client.Refresh(ctx, &auth.Tokens{RefreshToken: r.refresh})
	if err != nil {
		return "", fmt.Errorf("refresh the session: %w (run `vpn login`)", err)
	}
	if nt.RefreshToken != "" {
		r.refresh = nt.RefreshToken
	}
	return nt.IDToken, nil
}
