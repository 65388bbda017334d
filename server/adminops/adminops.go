// Package adminops holds the administrators' changes that both the
// vpn-gateway commands and the admin web page make: revoking keys and
// disabling or enabling users. Each change is written to the store and
// audited with the administrator's identity in one place, so the CLI and
// the web page cannot drift apart. Telling a running gateway to act at once
// is the caller's part (admin socket poke from the CLI, a direct sync in
// the gateway).
package adminops

import (
	"context"
	"fmt"
	"strings"

	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Actor is who makes a change and from where, for the audit log: a local
// user and "cli@host" for the commands, an e-mail and "admin-web <ip>" for
// the web page.
type Actor struct {
	Name, Remote string
}

// Revoked is the outcome of revoking one peer.
type Revoked struct {
	Peer store.Peer
	// Gone is true when the peer had already left the store (expired,
	// revoked or re-registered meanwhile): nothing was changed.
	Gone bool
}

// Revoke deletes peers from the store and audits each deletion as done by
// who. It stops at the first store error and returns what it did so far.
func Revoke(ctx context.Context, st *store.Store, who Actor, peers []store.Peer, reason string) ([]Revoked, error) {
	if reason == "" {
		reason = "revoked by " + who.Name
	}
	var out []Revoked
	for _, p := range peers {
		ok, err := st.DeletePeer(ctx, p.ID, "")
		if err != nil {
			return out, fmt.Errorf("revoke peer %s: %w", p.ID, err)
		}
		if !ok {
			out = append(out, Revoked{Peer: p, Gone: true})
			continue
		}
		if err := st.Record(ctx, store.AuditRecord{Actor: who.Name, Action: audit.Revoke, Subject: p.Subject, Email: p.Email, Network: p.Network, PeerID: p.ID,
			Remote: who.Remote, Detail: fmt.Sprintf("key of %s revoked: %s", dash(p.Hostname), reason)}); err != nil {
			return out, fmt.Errorf("revoke peer %s: %w", p.ID, err)
		}
		out = append(out, Revoked{Peer: p})
	}
	return out, nil
}

// Disable records a user as disabled (by subject, and by e-mail when known),
// audits it, and revokes the user's keys. It returns the revocations.
func Disable(ctx context.Context, st *store.Store, who Actor, subject, email, reason string) ([]Revoked, error) {
	for _, ident := range []string{subject, email} {
		if ident != "" {
			if err := st.DisableUser(ctx, ident, reason, who.Name); err != nil {
				return nil, fmt.Errorf("disable %s: %w", ident, err)
			}
		}
	}
	detail := "disabled"
	if reason != "" {
		detail += ": " + reason
	}
	if err := st.Record(ctx, store.AuditRecord{Actor: who.Name, Action: audit.Disable, Subject: subject, Email: email, Remote: who.Remote, Detail: detail}); err != nil {
		return nil, err
	}
	all, err := st.Peers(ctx, "")
	if err != nil {
		return nil, err
	}
	var peers []store.Peer
	for _, p := range all {
		if p.Subject == subject {
			peers = append(peers, p)
		}
	}
	why := "user disabled"
	if reason != "" {
		why += ": " + reason
	}
	return Revoke(ctx, st, who, peers, why)
}

// Enable lifts a Disable of any of idents (subject, e-mail, the name given)
// and audits it. It reports whether the user was disabled.
func Enable(ctx context.Context, st *store.Store, who Actor, subject, email string, idents ...string) (bool, error) {
	found := false
	for _, ident := range append([]string{subject, email}, idents...) {
		if ident == "" {
			continue
		}
		ok, err := st.EnableUser(ctx, ident)
		if err != nil {
			return false, fmt.Errorf("enable %s: %w", ident, err)
		}
		found = found || ok
	}
	if !found {
		return false, nil
	}
	if err := st.Record(ctx, store.AuditRecord{Actor: who.Name, Action: audit.Enable, Subject: subject, Email: email, Remote: who.Remote, Detail: "enabled"}); err != nil {
		return true, err
	}
	return true, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ResolveUser finds the user an administrator named: a token subject, an
// e-mail, or the part of an e-mail before the @ when only one user has it.
// It looks at registered peers and at the audit log (logins name both).
func ResolveUser(ctx context.Context, st *store.Store, name string) (subject, email string, err error) {
	type who struct{ sub, email string }
	seen := map[who]bool{}
	peers, err := st.Peers(ctx, "")
	if err != nil {
		return "", "", err
	}
	for _, p := range peers {
		seen[who{p.Subject, p.Email}] = true
	}
	recs, err := st.QueryAudit(ctx, store.AuditQuery{Action: "login"})
	if err != nil {
		return "", "", err
	}
	for _, r := range recs {
		if r.Subject != "" {
			seen[who{r.Subject, r.Email}] = true
		}
	}
	var exact, local []who
	for w := range seen {
		switch {
		case w.sub == name || (w.email != "" && strings.EqualFold(w.email, name)):
			exact = append(exact, w)
		case w.email != "" && strings.EqualFold(strings.SplitN(w.email, "@", 2)[0], name):
			local = append(local, w)
		}
	}
	pick := exact
	if len(pick) == 0 {
		pick = local
	}
	subs := map[string]who{}
	for _, w := range pick {
		if prev, ok := subs[w.sub]; !ok || prev.email == "" {
			subs[w.sub] = w
		}
	}
	switch len(subs) {
	case 0:
		return "", "", fmt.Errorf("no user %q has registered or logged in on this gateway", name)
	case 1:
		for _, w := range subs {
			return w.sub, w.email, nil
		}
	}
	var names []string
	for _, w := range subs {
		names = append(names, w.email+" ("+w.sub+")")
	}
	return "", "", fmt.Errorf("%q matches several users: %s; name one by e-mail or subject", name, strings.Join(names, ", "))
}

// Named is a user as an administrator named them: resolved to a subject
// and e-mail (ResolveUser), or, for someone who never registered or logged
// in here, taken as given (Unresolved says why).
type Named struct {
	Subject, Email string
	Unresolved     error
}

// Resolve resolves name, falling back to the name as given.
func Resolve(ctx context.Context, st *store.Store, name string) Named {
	subject, email, err := ResolveUser(ctx, st, name)
	if err != nil {
		return Named{Subject: name, Unresolved: err}
	}
	return Named{Subject: subject, Email: email}
}

// DisableNamed disables the user an administrator named (in advance, as
// given, when unknown here) and revokes their keys.
func DisableNamed(ctx context.Context, st *store.Store, who Actor, name, reason string) (Named, []Revoked, error) {
	u := Resolve(ctx, st, name)
	res, err := Disable(ctx, st, who, u.Subject, u.Email, reason)
	return u, res, err
}

// EnableNamed lifts a Disable of the user an administrator named, by
// subject, e-mail or the name as given. It reports whether they were
// disabled.
func EnableNamed(ctx context.Context, st *store.Store, who Actor, name string) (Named, bool, error) {
	u := Resolve(ctx, st, name)
	found, err := Enable(ctx, st, who, u.Subject, u.Email, name)
	return u, found, err
}
