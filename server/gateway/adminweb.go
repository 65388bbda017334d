package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/internal/units"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/adminweb"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/explain"
	"github.com/clearpath-vpn/clearpath/server/lifecycle"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// startAdminWeb serves the admin web page on admin_listen (HTTPS with the
// API's certificates when tls is configured) until stop is called. It is
// a no-op when admin_group is unset or admin_listen is off.
//
// Serve's hook: one call after the API listener and certificates exist,
// one deferred stop.
func (g *Gateway) startAdminWeb(ctx context.Context) (stop func(), err error) {
	cfg := g.cfg
	if !cfg.AdminEnabled() {
		return func() {}, nil
	}
	ver := auth.New(ctx, cfg.OIDC.Issuer, cfg.Admin.ClientID, cfg.OIDC.GroupsClaim, g.log)
	ver.SetRequireEmailVerified(cfg.OIDC.EmailVerifiedRequired())
	h, err := adminweb.New(adminweb.Options{Backend: webBackend{g}, Issuer: cfg.OIDC.Issuer, ClientID: cfg.Admin.ClientID, Verifier: ver,
		URL: cfg.Admin.URL, Group: cfg.AdminGroup, SessionTTL: cfg.Admin.SessionTTL, Log: g.log.With("component", "admin-web"), Now: g.now})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("admin_listen %s: %w (set admin_listen to a free address, or off)", cfg.AdminListen, err)
	}
	if g.certs != nil {
		ln = tls.NewListener(ln, g.certs.TLSConfig())
	}
	srv := apiServer(h, cfg.API, g.log)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("admin page stopped", "err", err)
		}
	}()
	g.log.Info("admin page serving", "admin_listen", ln.Addr().String(), "url", cfg.Admin.URL, "admin_group", cfg.AdminGroup)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}

// webBackend is the gateway as the admin page sees it.
type webBackend struct{ g *Gateway }

// live returns the devices' view of every running network's peers, by
// network and public key.
func (b webBackend) live() map[string]map[string]lifecycle.PeerStat {
	out := map[string]map[string]lifecycle.PeerStat{}
	for _, n := range b.g.MetricNetworks() {
		if s, err := b.g.Stats(n); err == nil {
			out[n] = s
		}
	}
	return out
}

func (b webBackend) Peers(ctx context.Context) ([]adminweb.Peer, error) {
	stored, err := b.g.store.Peers(ctx, "")
	if err != nil {
		return nil, err
	}
	return joinPeers(stored, b.live()), nil
}

// joinPeers is the peers page: stored keys with the devices' figures.
func joinPeers(stored []store.Peer, live map[string]map[string]lifecycle.PeerStat) []adminweb.Peer {
	out := make([]adminweb.Peer, 0, len(stored))
	for _, p := range stored {
		q := adminweb.Peer{ID: p.ID, User: p.Email, Network: p.Network, Hostname: p.Hostname, OS: p.OS, Expires: p.ExpiresAt, LastHandshake: p.LastHandshake}
		if q.User == "" {
			q.User = p.Subject
		}
		for _, a := range []netip.Addr{p.Addr.V4, p.Addr.V6} {
			if a.IsValid() {
				q.Addresses = append(q.Addresses, a.String())
			}
		}
		if s, ok := live[p.Network][p.PublicKey]; ok {
			q.OnDevice, q.Rx, q.Tx = true, s.Rx, s.Tx
			if s.LastHandshake.After(q.LastHandshake) {
				q.LastHandshake = s.LastHandshake
			}
		}
		out = append(out, q)
	}
	slices.SortStableFunc(out, func(a, b adminweb.Peer) int {
		if c := strings.Compare(a.User, b.User); c != 0 {
			return c
		}
		return strings.Compare(a.Network, b.Network)
	})
	return out
}

// connectedWithin: a peer with a handshake this recent counts as connected
// (WireGuard re-handshakes every 2 minutes while traffic flows).
const connectedWithin = 3 * time.Minute

func (b webBackend) Networks(ctx context.Context) ([]adminweb.Network, error) {
	b.g.reloadMu.RLock()
	nets := slices.Clone(b.g.cfg.Networks)
	b.g.reloadMu.RUnlock()
	stored, err := b.g.store.Peers(ctx, "")
	if err != nil {
		return nil, err
	}
	live := b.live()
	now := b.g.now()
	var out []adminweb.Network
	for i, n := range nets {
		row := adminweb.Network{Name: n.Name, Group: n.Group, Interface: n.Interface, LocalPorts: n.LocalPorts,
			Access: n.AccessSummary(fmt.Sprintf("networks[%d]", i))}
		for _, p := range n.Pool {
			row.Pool = append(row.Pool, p.String())
		}
		for _, p := range n.Allow {
			row.Allow = append(row.Allow, p.String())
		}
		for _, p := range stored {
			if p.Network == n.Name {
				row.Registered++
			}
		}
		for _, s := range live[n.Name] {
			row.Rx += s.Rx
			row.Tx += s.Tx
			if !s.LastHandshake.IsZero() && now.Sub(s.LastHandshake) < connectedWithin {
				row.Connected++
			}
		}
		out = append(out, row)
	}
	return out, nil
}

func (b webBackend) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	return b.g.store.QueryAudit(ctx, q)
}

func (b webBackend) Record(ctx context.Context, r store.AuditRecord) { b.g.audit.Record(ctx, r) }

func (b webBackend) Warnings(ctx context.Context) ([]adminweb.Warning, error) {
	b.g.reloadMu.RLock()
	s := settingsOf(b.g.cfg)
	b.g.reloadMu.RUnlock()
	now := b.g.now()
	var out []adminweb.Warning
	for _, t := range b.g.life.Tracked() {
		p := t.Peer
		for _, w := range lifecycle.Due(s, lifecycle.PeerTimes{Created: p.CreatedAt, Expires: p.ExpiresAt, LastHandshake: t.LastHandshake, LastActive: t.LastActive},
			func(string) bool { return false }, now) {
			if !w.Send {
				continue
			}
			user := p.Email
			if user == "" {
				user = p.Subject
			}
			row := adminweb.Warning{Kind: w.Kind, User: user, Network: p.Network, PeerID: p.ID, Hostname: p.Hostname}
			switch w.Kind {
			case lifecycle.KindExpiring:
				row.Detail = fmt.Sprintf("expires %s (within %s)", p.ExpiresAt.UTC().Format(time.DateTime), w.Lead)
			case lifecycle.KindUnused:
				row.Detail = "no handshake since registration at " + p.CreatedAt.UTC().Format(time.DateTime)
			case lifecycle.KindIdle:
				row.Detail = "silent since " + w.Since.UTC().Format(time.DateTime)
			}
			out = append(out, row)
		}
	}
	slices.SortFunc(out, func(a, b adminweb.Warning) int { return strings.Compare(a.Kind+a.User, b.Kind+b.User) })
	return out, nil
}

func (b webBackend) DisabledUsers(ctx context.Context) ([]store.DisabledUser, error) {
	return b.g.store.DisabledUsers(ctx)
}

// sync takes what the store no longer holds off the devices now, as the
// admin socket's sync does for the commands.
func (b webBackend) sync(ctx context.Context) string {
	start := time.Now()
	if _, err := b.g.life.Sync(ctx); err != nil {
		return fmt.Sprintf("; the devices follow within %s (sync: %v)", b.g.cfg.Lifecycle.StorePoll, err)
	}
	return fmt.Sprintf("; off the devices %s after the request", time.Since(start).Round(time.Millisecond))
}

func (b webBackend) Revoke(ctx context.Context, who adminops.Actor, id, reason string) (string, error) {
	p, err := b.g.store.PeerByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("no such peer (already revoked or expired?)")
	}
	if err != nil {
		return "", err
	}
	res, err := adminops.Revoke(ctx, b.g.store, who, []store.Peer{*p}, reason)
	if err != nil {
		return "", err
	}
	if len(res) == 1 && res[0].Gone {
		return "", fmt.Errorf("peer %s was already gone", id)
	}
	user := p.Email
	if user == "" {
		user = p.Subject
	}
	return fmt.Sprintf("Revoked peer %s of %s in %s", id, user, p.Network) + b.sync(ctx) + ".", nil
}

func (b webBackend) Disable(ctx context.Context, who adminops.Actor, user, reason string) (string, error) {
	_, res, err := adminops.DisableNamed(ctx, b.g.store, who, user, reason)
	if err != nil {
		return "", err
	}
	n := 0
	for _, r := range res {
		if !r.Gone {
			n++
		}
	}
	msg := fmt.Sprintf("Disabled %s; %d key(s) revoked", user, n)
	if n > 0 {
		msg += b.sync(ctx)
	}
	return msg + ".", nil
}

func (b webBackend) Enable(ctx context.Context, who adminops.Actor, user string) (string, error) {
	_, found, err := adminops.EnableNamed(ctx, b.g.store, who, user)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%s is not disabled", user)
	}
	return "Enabled " + user + ": they may register again.", nil
}

func (b webBackend) Explain(ctx context.Context, user, target, network string) (*explain.Answer, error) {
	tg, err := explain.ParseTarget(target)
	if err != nil {
		return nil, err
	}
	subject, email, err := adminops.ResolveUser(ctx, b.g.store, user)
	if err != nil {
		if network == "" {
			return nil, err
		}
		subject, email = user, "" // a would-be member of network
	}
	b.g.reloadMu.RLock()
	cfg := b.g.cfg
	b.g.reloadMu.RUnlock()
	return explain.Explain(ctx, explain.Request{Config: cfg, Store: b.g.store, Subject: subject, Email: email, Host: tg.Host, Port: tg.Port, Proto: tg.Proto, Network: network, Now: b.g.now()})
}

// flowTail is how much of the flow log's end the flows page reads.
const flowTail = 8 << 20

func (b webBackend) Flows(_ context.Context, user string) (*adminweb.FlowSummary, error) {
	b.g.reloadMu.RLock()
	path := b.g.cfg.Flows.Log
	b.g.reloadMu.RUnlock()
	switch {
	case b.g.flows == nil:
		return &adminweb.FlowSummary{Off: "The eBPF filter is off on this gateway (flows.filter), so no flows are logged."}, nil
	case path == "":
		return &adminweb.FlowSummary{Off: "The flow log is off (flows.log: -)."}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &adminweb.FlowSummary{Off: "No flow has been logged yet (" + path + ")."}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flow log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("flow log: %w", err)
	}
	off := max(st.Size()-flowTail, 0)
	data := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("flow log: %w", err)
	}
	if off > 0 { // skip the partial first line
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	s := summariseFlows(data, user)
	s.Source = fmt.Sprintf("%s (%s read)", path, units.Bytes(int64(len(data))))
	if off > 0 {
		s.Source = fmt.Sprintf("the newest %s of %s", units.Bytes(int64(len(data))), path)
	}
	return s, nil
}

// summariseFlows aggregates flow log lines per user and per (user,
// destination); user, when set, keeps only that user's flows.
func summariseFlows(data []byte, user string) *adminweb.FlowSummary {
	users := map[string]*adminweb.FlowUser{}
	type talkKey struct{ user, dst, proto, verdict string }
	talk := map[talkKey]*adminweb.FlowTalker{}
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var r bpf.FlowRecord
		if json.Unmarshal(line, &r) != nil {
			continue
		}
		if user != "" && !strings.EqualFold(r.User, user) {
			continue
		}
		u := users[r.User]
		if u == nil {
			u = &adminweb.FlowUser{User: r.User}
			users[r.User] = u
		}
		if r.Verdict == "allow" {
			u.Allowed++
		} else {
			u.Denied++
		}
		u.Bytes += r.Bytes
		u.ReplyBytes += r.ReplyBytes
		if r.LastSeen.After(u.LastSeen) {
			u.LastSeen = r.LastSeen
		}
		dst := r.Dst
		if r.DstPort != nil {
			dst = net.JoinHostPort(r.Dst, strconv.Itoa(int(*r.DstPort)))
		}
		k := talkKey{r.User, dst, r.Proto, r.Verdict}
		t := talk[k]
		if t == nil {
			t = &adminweb.FlowTalker{User: r.User, Dst: dst, Proto: r.Proto, Verdict: r.Verdict}
			talk[k] = t
		}
		t.Flows++
		t.Bytes += r.Bytes + r.ReplyBytes
	}
	s := &adminweb.FlowSummary{}
	for _, u := range users {
		s.Users = append(s.Users, *u)
	}
	slices.SortFunc(s.Users, func(a, b adminweb.FlowUser) int { return strings.Compare(a.User, b.User) })
	for _, t := range talk {
		s.Top = append(s.Top, *t)
	}
	slices.SortFunc(s.Top, func(a, b adminweb.FlowTalker) int {
		if a.Bytes != b.Bytes {
			if a.Bytes > b.Bytes {
				return -1
			}
			return 1
		}
		return strings.Compare(a.User+a.Dst, b.User+b.Dst)
	})
	if len(s.Top) > 20 {
		s.Top = s.Top[:20]
	}
	return s
}
