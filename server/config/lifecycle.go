package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Lifecycle says when the gateway warns about keys and how it reaches people.
// Expiry itself is key_ttl.
type Lifecycle struct {
	// WarnBefore are lead times before a key expires at which a warning goes
	// out (webhook, log, audit), e.g. [72h, 24h, 1h].
	WarnBefore []time.Duration `yaml:"warn_before"`
	// UnusedAfter warns about a key that saw no handshake this long after
	// it was registered. 0 turns the warning off; absent means 24h.
	UnusedAfter *time.Duration `yaml:"unused_after"`
	// IdleAfter warns about a key whose peer has been silent (no handshake,
	// no packet) this long. 0 turns it off; absent means 168h (7 days).
	IdleAfter *time.Duration `yaml:"idle_after"`
	// StorePoll is how often the gateway re-reads the store to notice
	// revocations made by `vpn-gateway peers revoke` on another host or by
	// another gateway sharing the store. Default 1s.
	StorePoll time.Duration `yaml:"store_poll"`
	Webhook   Webhook       `yaml:"webhook"`
}

// Webhook receives lifecycle events as JSON POSTs.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret, when set, signs each body: X-ClearPath-Signature is
	// "sha256=" + hex(HMAC-SHA256(secret, body)).
	Secret string `yaml:"secret"`
	// Timeout of one attempt. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts per event, the first included. Default 6.
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the delay before the first retry; it doubles with every
	// attempt up to one minute. Default 1s.
	Backoff time.Duration `yaml:"backoff"`
}

// Defaults of the lifecycle and admin settings.
const (
	DefaultUnusedAfter     = 24 * time.Hour
	DefaultIdleAfter       = 7 * 24 * time.Hour
	DefaultStorePoll       = time.Second
	DefaultWebhookTimeout  = 5 * time.Second
	DefaultWebhookAttempts = 6
	DefaultWebhookBackoff  = time.Second
	// DefaultAdminSocketName is the admin socket's file name in state_dir.
	DefaultAdminSocketName = "admin.sock"
)

// DefaultWarnBefore are the warning lead times used when warn_before is
// absent: those of 72h and 24h that are shorter than key_ttl.
var DefaultWarnBefore = []time.Duration{72 * time.Hour, 24 * time.Hour}

func (c *Config) applyLifecycleDefaults() {
	l := &c.Lifecycle
	if l.WarnBefore == nil {
		l.WarnBefore = []time.Duration{}
		for _, d := range DefaultWarnBefore {
			if d < c.KeyTTL {
				l.WarnBefore = append(l.WarnBefore, d)
			}
		}
	}
	if l.UnusedAfter == nil {
		d := DefaultUnusedAfter
		l.UnusedAfter = &d
	}
	if l.IdleAfter == nil {
		d := DefaultIdleAfter
		l.IdleAfter = &d
	}
	if l.StorePoll == 0 {
		l.StorePoll = DefaultStorePoll
	}
	if l.Webhook.Timeout == 0 {
		l.Webhook.Timeout = DefaultWebhookTimeout
	}
	if l.Webhook.MaxAttempts == 0 {
		l.Webhook.MaxAttempts = DefaultWebhookAttempts
	}
	if l.Webhook.Backoff == 0 {
		l.Webhook.Backoff = DefaultWebhookBackoff
	}
	if c.AdminSocket == "" {
		c.AdminSocket = filepath.Join(c.StateDir, DefaultAdminSocketName)
	}
}

// Unused returns lifecycle.unused_after (0 = off).
func (l Lifecycle) Unused() time.Duration {
	if l.UnusedAfter == nil {
		return DefaultUnusedAfter
	}
	return *l.UnusedAfter
}

// Idle returns lifecycle.idle_after (0 = off).
func (l Lifecycle) Idle() time.Duration {
	if l.IdleAfter == nil {
		return DefaultIdleAfter
	}
	return *l.IdleAfter
}

func (c *Config) validateLifecycle(bad func(field, format string, args ...any)) {
	l := c.Lifecycle
	seen := map[time.Duration]int{}
	for i, d := range l.WarnBefore {
		f := fmt.Sprintf("lifecycle.warn_before[%d]", i)
		switch {
		case d <= 0:
			bad(f, "%s must be a positive duration before expiry", d)
		case d >= c.KeyTTL:
			bad(f, "%s is not shorter than key_ttl (%s): the warning would come before the key exists", d, c.KeyTTL)
		}
		if j, ok := seen[d]; ok {
			bad(f, "%s repeats lifecycle.warn_before[%d]", d, j)
		}
		seen[d] = i
	}
	if d := l.Unused(); d < 0 {
		bad("lifecycle.unused_after", "%s is negative (0 turns the warning off)", d)
	}
	if d := l.Idle(); d < 0 {
		bad("lifecycle.idle_after", "%s is negative (0 turns the warning off)", d)
	}
	if l.StorePoll < 100*time.Millisecond || l.StorePoll > time.Minute {
		bad("lifecycle.store_poll", "%s is outside 100ms-1m (revocations must reach the device within seconds)", l.StorePoll)
	}
	w := l.Webhook
	if w.URL != "" {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("lifecycle.webhook.url", "%q is not an http(s) URL", RedactURL(w.URL))
		}
	}
	if w.Timeout < 0 || w.Timeout > 5*time.Minute {
		bad("lifecycle.webhook.timeout", "%s is outside 0-5m", w.Timeout)
	}
	if w.MaxAttempts < 1 || w.MaxAttempts > 50 {
		bad("lifecycle.webhook.max_attempts", "%d is outside 1-50", w.MaxAttempts)
	}
	if w.Backoff < 10*time.Millisecond || w.Backoff > 10*time.Minute {
		bad("lifecycle.webhook.backoff", "%s is outside 10ms-10m", w.Backoff)
	}
	// metrics_listen is checked with the API settings (api.go).
	// sun_path holds 108 bytes with the terminating NUL.
	if !filepath.IsAbs(c.AdminSocket) || len(c.AdminSocket) > 107 || strings.ContainsRune(c.AdminSocket, 0) {
		bad("admin_socket", "%q must be an absolute path of at most 107 bytes", c.AdminSocket)
	}
}

func validateProbe(n Network, f func(string) string, bad func(field, format string, args ...any)) {
	for k, a := range n.Probe {
		pf := fmt.Sprintf("%s[%d]", f("probe"), k)
		if !a.IsValid() {
			bad(pf, "not an IP address")
			continue
		}
		if !slices.ContainsFunc(n.Allow, func(p netip.Prefix) bool { return p.Contains(a) }) {
			bad(pf, "%s is outside the network's allowed CIDRs: doctor probes hosts the clients may reach", a)
		}
	}
}
