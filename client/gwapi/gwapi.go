// Package gwapi is the client side of the gateway API (server/api).
package gwapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// Client calls one gateway.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the gateway at server (an http(s) URL).
func New(server string) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want an http(s) URL such as https://vpn.example.com", server)
	}
	return &Client{base: strings.TrimRight(server, "/"), http: &http.Client{Timeout: 20 * time.Second}}, nil
}

// APIError is an error answer of the gateway.
type APIError struct {
	Status int
	Body   api.Error
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("gateway refused (%d %s): %s", e.Status, e.Body.Error, e.Body.Message)
	if len(e.Body.Networks) > 0 {
		msg += " [networks: " + strings.Join(e.Body.Networks, ", ") + "]"
	}
	return msg
}

func (c *Client) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil || e.Body.Error == "" {
			e.Body = api.Error{Error: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(data))}
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

// Discover fetches the gateway's discovery document.
func (c *Client) Discover(ctx context.Context) (*api.Discovery, error) {
	var d api.Discovery
	if err := c.do(ctx, http.MethodGet, api.PathDiscovery, "", nil, &d); err != nil {
		return nil, err
	}
	if major, _, _ := strings.Cut(d.APIVersion, "."); major != api.APIVersion {
		return nil, fmt.Errorf("gateway speaks API version %q; this client knows %q: upgrade the client", d.APIVersion, api.APIVersion)
	}
	return &d, nil
}

// Register registers the device's public key and returns its peer config.
func (c *Client) Register(ctx context.Context, token string, req api.RegisterRequest) (*api.PeerConfig, error) {
	var pc api.PeerConfig
	if err := c.do(ctx, http.MethodPost, api.PathPeers, token, req, &pc); err != nil {
		return nil, err
	}
	if err := Validate(&pc); err != nil {
		return nil, fmt.Errorf("gateway sent a bad peer config: %w", err)
	}
	return &pc, nil
}

// Self returns the caller's peer config in network ("" = the only one).
func (c *Client) Self(ctx context.Context, token, network string) (*api.PeerConfig, error) {
	var pc api.PeerConfig
	return &pc, c.do(ctx, http.MethodGet, api.PathPeerSelf+query(network), token, nil, &pc)
}

// DeleteSelf removes the caller's peer in network.
func (c *Client) DeleteSelf(ctx context.Context, token, network string) error {
	return c.do(ctx, http.MethodDelete, api.PathPeerSelf+query(network), token, nil, nil)
}

func query(network string) string {
	if network == "" {
		return ""
	}
	return "?network=" + url.QueryEscape(network)
}

// IsStatus reports whether err is a gateway answer with HTTP status code.
func IsStatus(err error, code int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == code
}
