package lifecycle

import (
	"slices"
	"strconv"
	"time"
)

// Settings are the lifecycle knobs of the configuration.
type Settings struct {
	// WarnBefore are lead times before expiry at which to warn.
	WarnBefore []time.Duration
	// UnusedAfter warns about a key without any handshake this long after
	// registration (0: off).
	UnusedAfter time.Duration
	// IdleAfter warns about a key whose peer was silent this long (0: off).
	IdleAfter time.Duration
	// StorePoll is how often the store is re-read.
	StorePoll time.Duration
	// AuditRetain is how long audit entries are kept (0: for ever); older
	// ones are pruned by the housekeeping sweep.
	AuditRetain time.Duration
}

// Warning kinds.
const (
	KindExpiring = "expiring"
	KindUnused   = "unused"
	KindIdle     = "idle"
)

// PeerTimes is what the warnings of one key depend on.
type PeerTimes struct {
	Created, Expires time.Time
	// LastHandshake is zero when the key never completed one.
	LastHandshake time.Time
	// LastActive is the latest handshake or packet seen (zero: never).
	LastActive time.Time
}

// Warning is one warning to send (or, with Send false, to mark as sent
// because a more urgent one of the same kind supersedes it).
type Warning struct {
	Kind string
	// Key identifies the warning among those of the same peer, so that it
	// goes out once: "expiring:1h0m0s", "unused", "idle:<unix time of the
	// last activity>" (a peer that comes back and goes idle again is
	// warned again).
	Key  string
	Lead time.Duration // for KindExpiring
	// Since is the last activity, for KindIdle.
	Since time.Time
	Send  bool
}

// Due returns the warnings due for a key at now that sent does not hold.
// Expiry warnings that became due together (the gateway was down when the
// earlier ones were due) produce only the most urgent one; the others are
// returned with Send false so they are marked and never sent late.
func Due(s Settings, p PeerTimes, sent func(key string) bool, now time.Time) []Warning {
	if !now.Before(p.Expires) {
		return nil // expiry itself is not a warning
	}
	var out []Warning
	leads := slices.Clone(s.WarnBefore)
	slices.Sort(leads) // most urgent first
	urgent := true
	for _, lead := range leads {
		if now.Before(p.Expires.Add(-lead)) {
			continue
		}
		key := KindExpiring + ":" + lead.String()
		if sent(key) {
			urgent = false // a more urgent one went out already
			continue
		}
		out = append(out, Warning{Kind: KindExpiring, Key: key, Lead: lead, Send: urgent})
		urgent = false
	}
	if s.UnusedAfter > 0 && p.LastHandshake.IsZero() && !now.Before(p.Created.Add(s.UnusedAfter)) && !sent(KindUnused) {
		out = append(out, Warning{Kind: KindUnused, Key: KindUnused, Send: true})
	}
	if s.IdleAfter > 0 && !p.LastActive.IsZero() && !now.Before(p.LastActive.Add(s.IdleAfter)) {
		key := KindIdle + ":" + strconv.FormatInt(p.LastActive.Unix(), 10)
		if !sent(key) {
			out = append(out, Warning{Kind: KindIdle, Key: key, Since: p.LastActive, Send: true})
		}
	}
	return out
}
