// Package dex runs the Dex identity provider (built from tools/) inside a lab
// node with the lab's users and clients, and gets tokens from it with the
// password grant, so tests and the demo log in without a browser.
package dex

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

const (
	// Issuer is the lab's identity provider, on the idp node.
	Issuer = "http://" + lab.IDPIP4 + ":5556/dex"
	// ClientID is the public client ClearPath logs in with; the gateway
	// wants it as the token audience.
	ClientID = "clearpath"
	// OtherClientID is another application of the same provider: a valid
	// token of it has the wrong audience for the gateway.
	OtherClientID = "other-app"
	// AdminClientID is the admin page's client; AdminRedirectURI the only
	// redirect it accepts: the page at its default admin_listen.
	AdminClientID    = "clearpath-admin"
	AdminRedirectURI = "https://127.0.0.1:9443/auth/callback"
	// Scopes asked for by the lab (groups carries the group claim).
	Scopes = "openid profile email groups offline_access"
)

//go:embed config.yaml.tmpl
var configTemplate string

var tmpl = template.Must(template.New("dex").Parse(configTemplate))

// Config is what varies between the lab's Dex instances.
type Config struct {
	// Issuer URL; default Issuer.
	Issuer string
	// Listen is host:port to serve on; default the issuer's host:port. A
	// second instance may serve the same issuer on another port.
	Listen string
	// DBFile is the sqlite3 storage; empty means in-memory storage.
	// Instances sharing the file share signing keys.
	DBFile string
	// IDTokenTTL is the lifetime of ID (and access) tokens; default 1h.
	IDTokenTTL time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		c.Issuer = Issuer
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return c, fmt.Errorf("dex: issuer %q: want http://host:port/path", c.Issuer)
	}
	if c.Listen == "" {
		c.Listen = u.Host
	}
	if c.IDTokenTTL == 0 {
		c.IDTokenTTL = time.Hour
	}
	return c, nil
}

// Render returns the Dex YAML configuration for c.
func (c Config) Render() ([]byte, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{
		"Issuer":        c.Issuer,
		"Listen":        c.Listen,
		"DBFile":        c.DBFile,
		"IDTokenTTL":    c.IDTokenTTL.String(),
		"ClientID":      ClientID,
		"OtherClientID": OtherClientID,
		"AdminClientID": AdminClientID, "AdminRedirectURI": AdminRedirectURI,
		"Users": users,
	})
	if err != nil {
		return nil, fmt.Errorf("dex: render config: %w", err)
	}
	return b.Bytes(), nil
}

// Binary finds the Dex program: $VPN_DEX_BIN, else <repo>/bin/dex (built by
// `make dex`).
func Binary() (string, error) {
	if p := os.Getenv("VPN_DEX_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("dex: VPN_DEX_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	root, err := lab.RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "dex")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("dex: %s not found: run `make dex` (or set VPN_DEX_BIN)", p)
	}
	return p, nil
}

// Server is a running Dex.
type Server struct {
	Config Config
	Node   *lab.Node
	Proc   *lab.Proc
}

// Start writes the configuration into the lab directory, starts bin in
// node under name (also the log's name) and waits until Dex serves its
// discovery document.
func Start(ctx context.Context, node *lab.Node, name, bin string, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	data, err := cfg.Render()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(node.Lab().Dir, name+".yaml")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return nil, fmt.Errorf("dex: write config: %w", err)
	}
	proc, err := node.Start(name, bin, "serve", cfgPath)
	if err != nil {
		return nil, err
	}
	s := &Server{Config: cfg, Node: node, Proc: proc}
	if err := s.waitReady(ctx); err != nil {
		proc.Stop(time.Second)
		return nil, fmt.Errorf("dex %s: %w\n%s", name, err, proc.Log())
	}
	return s, nil
}

// BaseURL is where this instance answers: the issuer's path on Listen.
func (s *Server) BaseURL() string {
	u, _ := url.Parse(s.Config.Issuer)
	return "http://" + s.Config.Listen + u.Path
}

// TokenURL is this instance's token endpoint.
func (s *Server) TokenURL() string { return s.BaseURL() + "/token" }

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := s.Node.HTTPClient(2 * time.Second)
	u := s.BaseURL() + "/.well-known/openid-configuration"
	var last error
	for {
		if done, err := s.Proc.Exited(); done {
			return fmt.Errorf("exited while starting: %v", err)
		}
		resp, err := hc.Get(u)
		if err == nil {
			var doc struct {
				Issuer string `json:"issuer"`
			}
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if err == nil && doc.Issuer == s.Config.Issuer {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("discovery says issuer %q", doc.Issuer)
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s: %v", u, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tokens is a token endpoint answer.
type Tokens struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Login gets tokens for a lab user (by name, with the user's password)
// through the password grant, for client clientID.
func (s *Server) Login(ctx context.Context, clientID, user string) (*Tokens, error) {
	u, ok := LookupUser(user)
	if !ok {
		return nil, fmt.Errorf("dex: no lab user %q", user)
	}
	return PasswordGrant(ctx, s.Node.HTTPClient(10*time.Second), s.TokenURL(), clientID, u.Email, u.Password, Scopes)
}

// PasswordGrant runs the OAuth2 resource owner password grant against
// tokenURL for a public client.
func PasswordGrant(ctx context.Context, hc *http.Client, tokenURL, clientID, username, password, scope string) (*Tokens, error) {
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {clientID},
		"username":   {username},
		"password":   {password},
		"scope":      {scope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dex: password grant: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("dex: password grant for %s: %s: %s", username, resp.Status, body)
	}
	var t Tokens
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("dex: token answer: %w", err)
	}
	if t.IDToken == "" {
		return nil, fmt.Errorf("dex: token answer has no id_token: %s", body)
	}
	return &t, nil
}

// Claims decodes a JWT's payload WITHOUT verifying it: for tests that look
// at what a token says.
func Claims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("dex: not a JWT (want 3 dot-separated parts)")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("dex: JWT payload: %w", err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("dex: JWT payload: %w", err)
	}
	return c, nil
}
