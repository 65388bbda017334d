package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// API bounds what one client can make the public API server hold: how long
// a connection may take to send its request and read the answer, how big
// the headers may be, how many connections one address may keep open, and
// how often one user or one address may register.
type API struct {
	// ReadHeaderTimeout: the request line and headers must arrive within
	// this (slowloris). Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout: the whole request, body included. Default 15s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout: from the end of the headers to the end of the answer.
	// Default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout: a keep-alive connection waiting for its next request is
	// closed after this. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and headers. Default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnsPerSource: open connections one client address (an IPv6 /64)
	// may hold; more are closed as soon as they are accepted. Connections
	// from trusted_proxies are not counted. Default 64.
	MaxConnsPerSource int `yaml:"max_conns_per_source"`
	// MaxConns: open connections in all. Default 8192.
	MaxConns int `yaml:"max_conns"`
	// RegisterPerUser and RegisterPerSource are token buckets on
	// POST /api/v1/peers, written "N/DURATION" (N registrations per
	// DURATION, up to N at once) or "off". Defaults "10/1m" per user and
	// "60/1m" per source address (an office behind one NAT).
	RegisterPerUser   string `yaml:"register_per_user"`
	RegisterPerSource string `yaml:"register_per_source"`
}

// Defaults of the API limits.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxConnsPerSource = 64
	DefaultMaxConns          = 8192
	DefaultRegisterPerUser   = "10/1m"
	DefaultRegisterPerSource = "60/1m"
	// DefaultMetricsListen keeps /metrics (every user's e-mail, bytes and
	// handshakes) on loopback. 9587: next to the WireGuard exporter's 9586.
	DefaultMetricsListen = "127.0.0.1:9587"
	// MetricsListenOff turns the separate metrics listener off.
	MetricsListenOff = "off"
	// MinMetricsTokenLen keeps guessable tokens out.
	MinMetricsTokenLen = 16
)

// Rate is a parsed "N/DURATION" limit: Burst events at once, refilled at
// Burst per Per. The zero Rate is off.
type Rate struct {
	Burst int
	Per   time.Duration
}

// Off reports whether the limit is off.
func (r Rate) Off() bool { return r.Burst == 0 }

// Interval is the time one token takes to come back.
func (r Rate) Interval() time.Duration { return r.Per / time.Duration(r.Burst) }

// ParseRate reads "N/DURATION" ("10/1m", "5/30s") or "off".
func ParseRate(s string) (Rate, error) {
	if s == "off" {
		return Rate{}, nil
	}
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not N/DURATION (e.g. 10/1m) or off", s)
	}
	burst, err := strconv.Atoi(n)
	if err != nil || burst < 1 || burst > 100000 {
		return Rate{}, fmt.Errorf("%q: %q is not a count from 1 to 100000", s, n)
	}
	per, err := ParseDuration(d)
	if err != nil || per < time.Second || per > 24*time.Hour {
		return Rate{}, fmt.Errorf("%q: %q is not a duration from 1s to 24h", s, d)
	}
	return Rate{Burst: burst, Per: per}, nil
}

// UserRate is api.register_per_user, parsed (validated at load).
func (a API) UserRate() Rate { r, _ := ParseRate(a.RegisterPerUser); return r }

// SourceRate is api.register_per_source, parsed (validated at load).
func (a API) SourceRate() Rate { r, _ := ParseRate(a.RegisterPerSource); return r }

// MetricsAddr is the separate metrics listener's address, or "" when off.
func (c *Config) MetricsAddr() string {
	if c.MetricsListen == MetricsListenOff {
		return ""
	}
	return c.MetricsListen
}

func (c *Config) applyAPIDefaults() {
	a := &c.API
	if a.ReadHeaderTimeout == 0 {
		a.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if a.ReadTimeout == 0 {
		a.ReadTimeout = DefaultReadTimeout
	}
	if a.WriteTimeout == 0 {
		a.WriteTimeout = DefaultWriteTimeout
	}
	if a.IdleTimeout == 0 {
		a.IdleTimeout = DefaultIdleTimeout
	}
	if a.MaxHeaderBytes == 0 {
		a.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if a.MaxConnsPerSource == 0 {
		a.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if a.MaxConns == 0 {
		a.MaxConns = DefaultMaxConns
	}
	if a.RegisterPerUser == "" {
		a.RegisterPerUser = DefaultRegisterPerUser
	}
	if a.RegisterPerSource == "" {
		a.RegisterPerSource = DefaultRegisterPerSource
	}
	if c.MetricsListen == "" {
		c.MetricsListen = DefaultMetricsListen
	}
}

func (c *Config) validateAPI(bad func(field, format string, args ...any)) {
	a := c.API
	dur := func(field string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			bad("api."+field, "%s is outside %s-%s", d, lo, hi)
		}
	}
	dur("read_header_timeout", a.ReadHeaderTimeout, 500*time.Millisecond, time.Minute)
	dur("read_timeout", a.ReadTimeout, time.Second, 10*time.Minute)
	dur("write_timeout", a.WriteTimeout, time.Second, 10*time.Minute)
	dur("idle_timeout", a.IdleTimeout, time.Second, time.Hour)
	if a.ReadTimeout < a.ReadHeaderTimeout {
		bad("api.read_timeout", "%s is shorter than api.read_header_timeout (%s), which it includes", a.ReadTimeout, a.ReadHeaderTimeout)
	}
	if a.MaxHeaderBytes < 4<<10 || a.MaxHeaderBytes > 1<<20 {
		bad("api.max_header_bytes", "%d is outside 4096-1048576 (a token alone may be 8 KB)", a.MaxHeaderBytes)
	}
	if a.MaxConnsPerSource < 1 || a.MaxConnsPerSource > 100000 {
		bad("api.max_conns_per_source", "%d is outside 1-100000", a.MaxConnsPerSource)
	}
	if a.MaxConns < 1 || a.MaxConns > 1000000 {
		bad("api.max_conns", "%d is outside 1-1000000", a.MaxConns)
	} else if a.MaxConns < a.MaxConnsPerSource {
		bad("api.max_conns", "%d is below api.max_conns_per_source (%d)", a.MaxConns, a.MaxConnsPerSource)
	}
	if _, err := ParseRate(a.RegisterPerUser); err != nil {
		bad("api.register_per_user", "%v", err)
	}
	if _, err := ParseRate(a.RegisterPerSource); err != nil {
		bad("api.register_per_source", "%v", err)
	}
	for i, p := range c.TrustedProxies {
		f := fmt.Sprintf("trusted_proxies[%d]", i)
		switch {
		case !p.IsValid():
			bad(f, "not a CIDR")
		case p != p.Masked():
			bad(f, "%s has host bits set (did you mean %s?)", p, p.Masked())
		case p.Bits() == 0:
			bad(f, "%s trusts every address: any client could then choose its own source with X-Forwarded-For", p)
		}
	}
	if m := c.MetricsListen; m != MetricsListenOff {
		if _, _, err := net.SplitHostPort(m); err != nil {
			bad("metrics_listen", "%q is not host:port or off (%v)", m, err)
		} else if err := validPort(m); err != nil {
			bad("metrics_listen", "%q: %v", m, err)
		} else if m == c.Listen {
			bad("metrics_listen", "%q is the API's listen address; set metrics_listen: off and metrics_token to serve /metrics there", m)
		}
	}
	if t := c.MetricsToken; t != "" && (len(t) < MinMetricsTokenLen || strings.ContainsAny(t, " \t\r\n")) {
		bad("metrics_token", "must be at least %d characters without spaces (e.g. `openssl rand -hex 32`)", MinMetricsTokenLen)
	}
}
