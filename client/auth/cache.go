package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// Cache keeps tokens per gateway in the user's config directory: the
// directory 0700, each file 0600, written atomically.
type Cache struct{ Dir string }

// DefaultCache is ~/.config/clearpath (os.UserConfigDir), or
// $CLEARPATH_CONFIG_DIR when set.
func DefaultCache() (*Cache, error) {
	if d := envvar.Get("CONFIG_DIR"); d != "" {
		return &Cache{Dir: d}, nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return nil, fmt.Errorf("find the user config dir: %w", err)
	}
	return &Cache{Dir: filepath.Join(base, "clearpath")}, nil
}

func (c *Cache) path(server string) string {
	h := sha256.Sum256([]byte(strings.TrimRight(server, "/")))
	return filepath.Join(c.Dir, "tokens", hex.EncodeToString(h[:8])+".json")
}

// Load returns the cached tokens of server (nil when none).
func (c *Cache) Load(server string) (*Tokens, error) {
	b, err := os.ReadFile(c.path(server))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token cache: %w", err)
	}
	var t Tokens
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("token cache %s is damaged (%v): run `vpn logout` and log in again", c.path(server), err)
	}
	return &t, nil
}

// Save stores t for its server.
func (c *Cache) Save(t *Tokens) error {
	p := c.path(t.Server)
	for _, d := range []string{c.Dir, filepath.Dir(p)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("token cache: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("token cache: %w", err)
		}
	}
	b, _ := json.MarshalIndent(t, "", "  ")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	return c.setDefault(t.Server)
}

// Delete removes server's tokens.
func (c *Cache) Delete(server string) error {
	if err := os.Remove(c.path(server)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("token cache: %w", err)
	}
	return nil
}

func (c *Cache) setDefault(server string) error {
	return os.WriteFile(filepath.Join(c.Dir, "server"), []byte(server+"\n"), 0o600)
}

// DefaultServer is the server of the last login ("" if none).
func (c *Cache) DefaultServer() string {
	b, err := os.ReadFile(filepath.Join(c.Dir, "server"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ServerSettings are what the user chose for one server, remembered next
// to its tokens so that later commands (and the agent's renewals) reach it
// the same way.
type ServerSettings struct {
	Server string `json:"server"`
	// AllowHTTP: the user allowed plain http to this (non-loopback) server.
	AllowHTTP bool `json:"allow_http,omitempty"`
	// CAFile is an extra trusted root (PEM), read by the CLI at each use.
	CAFile string `json:"ca_file,omitempty"`
}

func (c *Cache) settingsPath(server string) string {
	h := sha256.Sum256([]byte(strings.TrimRight(server, "/")))
	return filepath.Join(c.Dir, "servers", hex.EncodeToString(h[:8])+".json")
}

// LoadSettings returns what is remembered for server (zero when nothing).
func (c *Cache) LoadSettings(server string) (ServerSettings, error) {
	s := ServerSettings{Server: server}
	b, err := os.ReadFile(c.settingsPath(server))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read server settings: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("server settings %s are damaged (%v): delete the file and pass --allow-http/--ca-file again", c.settingsPath(server), err)
	}
	s.Server = server
	return s, nil
}

// SaveSettings remembers s for s.Server (0600 in a 0700 directory).
func (c *Cache) SaveSettings(s ServerSettings) error {
	p := c.settingsPath(s.Server)
	for _, d := range []string{c.Dir, filepath.Dir(p)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("server settings: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("server settings: %w", err)
		}
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("server settings: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("server settings: %w", err)
	}
	return nil
}

// Servers lists the servers this user logged in to or chose settings for
// (shell completion of --server), the last login first.
func (c *Cache) Servers() []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(c.DefaultServer())
	for _, sub := range []string{"tokens", "servers"} {
		files, _ := filepath.Glob(filepath.Join(c.Dir, sub, "*.json"))
		for _, f := range files {
			var v struct {
				Server string `json:"server"`
			}
			if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &v) == nil {
				add(v.Server)
			}
		}
	}
	return out
}
