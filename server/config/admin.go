package config

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// AdminPage configures the admin web page beyond admin_listen and
// admin_group. The page is on only when admin_group is set.
type AdminPage struct {
	// ClientID is the OIDC client the page logs in with (authorization code
	// + PKCE; a public client). Default oidc.client_id. The provider must
	// accept URL + "/auth/callback" as its redirect URI.
	ClientID string `yaml:"client_id"`
	// URL is the page's address as browsers reach it (scheme://host:port):
	// the redirect URI and the only Origin accepted on changes. Default
	// https://<admin_listen> with tls, else http://<admin_listen>.
	URL string `yaml:"url"`
	// SessionTTL is how long a login lasts. Default 8h.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// Defaults of the admin page.
const (
	DefaultAdminListen     = "127.0.0.1:9443"
	DefaultAdminSessionTTL = 8 * time.Hour
	// MinAdminSessionTTL is low enough for tests that watch a session
	// expire.
	MinAdminSessionTTL = 5 * time.Second
	// AdminCallbackPath is the redirect URI's path.
	AdminCallbackPath = "/auth/callback"
)

// AdminEnabled reports whether the admin page is served.
func (c *Config) AdminEnabled() bool { return c.AdminGroup != "" && c.AdminListen != "off" }

func (c *Config) applyAdminDefaults() {
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen
	}
	if c.Admin.ClientID == "" {
		c.Admin.ClientID = c.OIDC.ClientID
	}
	if c.Admin.SessionTTL == 0 {
		c.Admin.SessionTTL = DefaultAdminSessionTTL
	}
	if c.Admin.URL == "" && c.AdminListen != "off" {
		scheme := "http"
		if c.TLS.Enabled() {
			scheme = "https"
		}
		c.Admin.URL = scheme + "://" + c.AdminListen
	}
	c.Admin.URL = strings.TrimSuffix(c.Admin.URL, "/")
}

func (c *Config) validateAdmin(bad func(field, format string, args ...any)) {
	if !c.AdminEnabled() {
		return
	}
	host, _, err := net.SplitHostPort(c.AdminListen)
	if err != nil {
		bad("admin_listen", "%q is not host:port or off (%v)", c.AdminListen, err)
		return
	}
	if !c.TLS.Enabled() && !isLoopbackHost(host) {
		bad("admin_listen", "%s is not a loopback address and there is no tls block: admin sessions would travel in clear (listen on 127.0.0.1, or add tls)", c.AdminListen)
	}
	if c.Admin.ClientID == "" {
		bad("admin.client_id", "required (or oidc.client_id): the OIDC client the admin page logs in with")
	}
	if c.Admin.SessionTTL < MinAdminSessionTTL {
		bad("admin.session_ttl", "%s is shorter than %s", c.Admin.SessionTTL, MinAdminSessionTTL)
	}
	u, err := url.Parse(c.Admin.URL)
	switch {
	case err != nil:
		bad("admin.url", "%q: %v", c.Admin.URL, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.Path != "", u.RawQuery != "", u.Fragment != "", u.User != nil:
		bad("admin.url", "%q must be scheme://host[:port] only (http or https, no path)", c.Admin.URL)
	case u.Scheme == "http" && c.TLS.Enabled():
		bad("admin.url", "%q is http but the page serves HTTPS (tls is configured)", c.Admin.URL)
	case u.Scheme == "https" && !c.TLS.Enabled():
		bad("admin.url", "%q is https but there is no tls block: the page would serve plain HTTP", c.Admin.URL)
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}
