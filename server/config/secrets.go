package config

import (
	"net/url"
	"strings"
	"time"
)

// Audit configures the audit log's retention.
type Audit struct {
	// Retain is how long entries are kept; older ones are pruned every
	// hour. Absent means DefaultAuditRetain, 0 keeps them for ever.
	Retain *time.Duration `yaml:"retain"`
}

// Defaults of the address and secret settings.
const (
	// DefaultAllocationGrace is how long a device's addresses outlive its
	// revoked, deleted or expired key.
	DefaultAllocationGrace = 7 * 24 * time.Hour
	// DefaultAuditRetain is 400 days: a year and a bit, for yearly reviews.
	DefaultAuditRetain = 400 * 24 * time.Hour
)

func (c *Config) applySecretsDefaults() {
	if c.AllocationGrace == 0 {
		c.AllocationGrace = DefaultAllocationGrace
	}
	if c.Audit.Retain == nil {
		d := DefaultAuditRetain
		c.Audit.Retain = &d
	}
	if c.OIDC.RequireEmailVerified == nil {
		t := true
		c.OIDC.RequireEmailVerified = &t
	}
}

// AuditRetain returns audit.retain (0: keep for ever).
func (c *Config) AuditRetain() time.Duration {
	if c.Audit.Retain == nil {
		return DefaultAuditRetain
	}
	return *c.Audit.Retain
}

// EmailVerifiedRequired returns oidc.require_email_verified (default true).
func (o OIDC) EmailVerifiedRequired() bool {
	return o.RequireEmailVerified == nil || *o.RequireEmailVerified
}

func (c *Config) validateSecrets(bad func(field, format string, args ...any)) {
	if c.AllocationGrace < time.Minute || c.AllocationGrace > 366*24*time.Hour {
		bad("allocation_grace", "%s is outside 1m-8784h (366 days)", c.AllocationGrace)
	}
	if d := c.AuditRetain(); d != 0 && d < 24*time.Hour {
		bad("audit.retain", "%s is shorter than a day (0s keeps entries for ever)", d)
	}
}

// RedactDSN hides the password of a store DSN for printing: the
// password of a postgres:// URL (user:password@) and any password= query
// parameter become "xxxxx". A SQLite path is returned as it is.
func RedactDSN(dsn string) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// Unparsable: keep only what cannot hold the password.
		scheme, _, _ := strings.Cut(dsn, "://")
		return scheme + "://(unparsable DSN hidden)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// RedactURL hides what may be a secret in a URL (webhook URLs often carry
// a token in their path or query): only the scheme and host are shown.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(URL hidden)"
	}
	out := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}
