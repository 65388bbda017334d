// Package audit writes the gateway's audit log: every login, registration,
// refresh, expiry, warning, revocation and configuration reload, with who,
// what, when and from where. Entries go to the store and to the log; when the
// store is unreachable they wait in memory (oldest dropped beyond a bound)
// and are written, with their original time, once it answers again.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/clearpath-vpn/clearpath/server/store"
)

// Actions recorded in the audit log.
const (
	Login    = "login"    // a token the gateway had not seen was verified
	Register = "register" // a new key was registered
	Refresh  = "refresh"  // a registered key was registered again (expiry extended)
	Delete   = "delete"   // the user removed their own peer
	Expire   = "expire"   // a key reached key_ttl and left the device
	Warn     = "warn"     // a warning went out (expiring, unused, idle)
	Revoke   = "revoke"   // an administrator or a policy removed a key
	Disable  = "disable"  // an administrator disabled a user
	Enable   = "enable"   // an administrator enabled a user again
	Refuse   = "refuse"   // a registration was refused by policy (disabled user)
	Reload   = "reload"   // the configuration was reloaded (or a reload failed)
	Free     = "free"     // a device's addresses were freed (grace period over, or by an administrator)
	Start    = "start"    // the gateway started
	Stop     = "stop"     // the gateway stopped
)

// maxPending bounds the entries kept while the store is unreachable.
const maxPending = 10000

// Log records audit entries.
type Log struct {
	st  *store.Store
	log *slog.Logger
	// OnRecord, if set, sees every entry (metrics).
	OnRecord func(store.AuditRecord)

	mu      sync.Mutex
	pending []store.AuditRecord
	dropped int
}

// New returns a Log writing to st.
func New(st *store.Store, log *slog.Logger) *Log { return &Log{st: st, log: log} }

// Record writes r (Time defaults to now). It does not fail: an entry the
// store refuses is kept and retried by Flush.
func (l *Log) Record(ctx context.Context, r store.AuditRecord) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	l.log.Info("audit", "action", r.Action, "actor", r.Actor, "user", r.Subject, "email", r.Email, "network", r.Network, "peer", r.PeerID, "remote", r.Remote, "detail", r.Detail)
	if l.OnRecord != nil {
		l.OnRecord(r)
	}
	l.Flush(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		l.queue(r)
		return
	}
	if err := l.st.Record(ctx, r); err != nil {
		l.log.Warn("audit: store unreachable, keeping the entry until it answers", "err", err)
		l.queue(r)
	}
}

func (l *Log) queue(r store.AuditRecord) {
	if len(l.pending) >= maxPending {
		l.pending = l.pending[1:]
		l.dropped++
	}
	l.pending = append(l.pending, r)
}

// Flush writes entries kept while the store was unreachable, in order.
func (l *Log) Flush(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.pending) > 0 {
		if err := l.st.Record(ctx, l.pending[0]); err != nil {
			return
		}
		l.pending = l.pending[1:]
	}
	if l.dropped > 0 {
		l.log.Error("audit: entries were dropped while the store was unreachable", "dropped", l.dropped)
		l.dropped = 0
	}
}

// Pending returns how many entries wait for the store.
func (l *Log) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}
