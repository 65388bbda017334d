package gateway

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// admit applies the operations policies to an identity whose token was just
// verified, before any handler acts on it:
//   - a user an administrator disabled is refused (and any key left is revoked);
//   - keys in networks whose group the token no longer carries are revoked
//     at once: this is how leaving a group takes effect when the client
//     refreshes its token and registers again;
//   - the first time the gateway sees a token is audited as a login.
//
// On refusal it has answered the request and returns false. The caller holds
// reloadMu for reading (every API request does).
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, id *auth.Identity, raw string) bool {
	ctx := r.Context()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d, err := g.store.UserDisabled(sctx, id.Subject, id.Email)
	if err != nil {
		g.metrics.Errors.WithLabelValues("store").Inc()
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "the gateway cannot read its store right now; retry shortly")
		return false
	}
	if d != nil {
		// Who disabled the user stays in the audit log: the refused user
		// learns what and when, not which administrator.
		msg := fmt.Sprintf("user %s was disabled by an administrator on %s", display(id), d.Created.UTC().Format(time.RFC3339))
		if d.Reason != "" {
			msg += ": " + d.Reason
		}
		g.life.RevokeWhere(ctx, func(p store.Peer) bool { return p.Subject == id.Subject }, "user disabled by "+d.Actor, "gateway", r.RemoteAddr)
		g.audit.Record(ctx, store.AuditRecord{Actor: id.Subject, Action: audit.Refuse, Subject: id.Subject, Email: id.Email, Remote: r.RemoteAddr, Detail: r.Method + " " + r.URL.Path + ": " + msg})
		writeErr(w, http.StatusForbidden, api.ErrForbidden, msg)
		return false
	}
	groupOf := map[string]string{}
	for _, n := range g.cfg.Networks {
		groupOf[n.Name] = n.Group
	}
	g.life.RevokeWhere(ctx, func(p store.Peer) bool {
		grp, ok := groupOf[p.Network]
		return p.Subject == id.Subject && ok && !slices.Contains(id.Groups, grp)
	}, fmt.Sprintf("no longer in the network's group (token groups: %s)", groupList(id.Groups)), "gateway", r.RemoteAddr)
	if g.logins.first(raw, id.Expiry) {
		g.audit.Record(ctx, store.AuditRecord{Actor: id.Subject, Action: audit.Login, Subject: id.Subject, Email: id.Email, Remote: r.RemoteAddr,
			Detail: fmt.Sprintf("token valid until %s, groups: %s", id.Expiry.UTC().Format(time.RFC3339), groupList(id.Groups))})
	}
	return true
}

func groupList(gs []string) string {
	if len(gs) == 0 {
		return "none"
	}
	return strings.Join(gs, ", ")
}

// registerAction tells a new key from the same key registered again.
func registerAction(p store.Peer, old *store.Peer) string {
	if old != nil && old.PublicKey == p.PublicKey {
		return audit.Refresh
	}
	return audit.Register
}

// tokenSeen remembers the tokens already verified (by hash, until they
// expire), so that each is audited once as a login.
type tokenSeen struct {
	mu   sync.Mutex
	seen map[[32]byte]time.Time
}

func newTokenSeen() *tokenSeen { return &tokenSeen{seen: map[[32]byte]time.Time{}} }

func (t *tokenSeen) first(raw string, expiry time.Time) bool {
	h := sha256.Sum256([]byte(raw))
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[h]; ok {
		return false
	}
	if len(t.seen) > 4096 {
		for k, exp := range t.seen {
			if now.After(exp) {
				delete(t.seen, k)
			}
		}
	}
	t.seen[h] = expiry
	return true
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
