package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/client/gwapi"
)

// Pin is the identity provider a server's logins go to, recorded at the
// first login (or written beforehand by an administrator): a gateway that
// later names another issuer or client id is refused, so a compromised
// gateway cannot send the login to another application of the company's
// provider and collect ID tokens meant for it.
type Pin struct {
	Server   string    `json:"server"`
	Issuer   string    `json:"issuer"`
	ClientID string    `json:"client_id"`
	PinnedAt time.Time `json:"pinned_at,omitzero"`
}

// PinError is a gateway naming an identity provider other than the pinned one.
type PinError struct{ Pinned, Got Pin }

func (e *PinError) Error() string {
	return fmt.Sprintf("the gateway %s now sends its users to identity provider %s (client id %s), but this client pinned %s (client id %s) for it at the first login; "+
		"if your administrator changed the identity provider, accept the new one with `vpn login --server %s --reset-server`",
		e.Pinned.Server, gwapi.Clean(e.Got.Issuer), gwapi.Clean(e.Got.ClientID), e.Pinned.Issuer, e.Pinned.ClientID, e.Pinned.Server)
}

func (c *Cache) pinPath(server string) string {
	return filepath.Join(c.Dir, "pins", filepath.Base(c.path(server)))
}

// LoadPin returns the pin of server: the pin file, else the issuer and
// client id of tokens cached before pins existed (nil: none yet).
func (c *Cache) LoadPin(server string) (*Pin, error) {
	b, err := os.ReadFile(c.pinPath(server))
	if err == nil {
		var p Pin
		if err := json.Unmarshal(b, &p); err != nil || p.Issuer == "" || p.ClientID == "" {
			return nil, fmt.Errorf("identity provider pin %s is damaged (%v): fix it or run `vpn login --reset-server`", c.pinPath(server), err)
		}
		if p.Server == "" {
			p.Server = server
		}
		return &p, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read identity provider pin: %w", err)
	}
	if t, err := c.Load(server); err == nil && t != nil && t.Issuer != "" && t.ClientID != "" {
		return &Pin{Server: server, Issuer: t.Issuer, ClientID: t.ClientID}, nil
	}
	return nil, nil
}

// CheckPin refuses issuer and clientID for server when they differ from
// its pin; without a pin anything passes (the first login pins).
func (c *Cache) CheckPin(server, issuer, clientID string) error {
	p, err := c.LoadPin(server)
	if err != nil || p == nil {
		return err
	}
	if strings.TrimRight(p.Issuer, "/") != strings.TrimRight(issuer, "/") || p.ClientID != clientID {
		return &PinError{Pinned: *p, Got: Pin{Server: server, Issuer: issuer, ClientID: clientID}}
	}
	return nil
}

// SavePin records server's identity provider unless a pin file exists.
func (c *Cache) SavePin(server, issuer, clientID string) error {
	p := c.pinPath(server)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("identity provider pin: %w", err)
	}
	b, _ := json.MarshalIndent(Pin{Server: strings.TrimRight(server, "/"), Issuer: issuer, ClientID: clientID, PinnedAt: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("identity provider pin: %w", err)
	}
	return nil
}

// ResetPin forgets server's pin and cached tokens: the next login pins
// whatever provider the gateway names then.
func (c *Cache) ResetPin(server string) error {
	if err := os.Remove(c.pinPath(server)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("identity provider pin: %w", err)
	}
	return c.Delete(server)
}
