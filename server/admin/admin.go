// Package admin is the gateway's local admin socket protocol (HTTP/JSON over
// a unix socket, 0600, root only): the admin commands use it to tell the
// running gateway to reload its configuration or to re-read the store at
// once after a revocation. It holds the wire types and the client; the
// server side lives in server/gateway.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Paths on the admin socket.
const (
	PathReload = "/v1/reload"
	PathSync   = "/v1/sync"
	PathStatus = "/v1/status"
)

// ErrNoGateway means nothing listens on the socket.
var ErrNoGateway = errors.New("no gateway is running")

// Change is what a reload did to one network.
type Change struct {
	Network string `json:"network"`
	// Op is "add", "remove", "recreate" or "update".
	Op      string   `json:"op"`
	Details []string `json:"details,omitempty"`
}

// ReloadResult answers POST /v1/reload.
type ReloadResult struct {
	Changes []Change `json:"changes"`
	// Settings lists other settings that changed (key_ttl, lifecycle, endpoint).
	Settings []string `json:"settings,omitempty"`
	Took     string   `json:"took"`
}

// Summary is a one-line description.
func (r ReloadResult) Summary() string {
	if len(r.Changes) == 0 && len(r.Settings) == 0 {
		return "no changes"
	}
	s := ""
	for _, c := range r.Changes {
		if s != "" {
			s += "; "
		}
		s += c.Op + " " + c.Network
		for _, d := range c.Details {
			s += " " + d
		}
	}
	for _, k := range r.Settings {
		if s != "" {
			s += "; "
		}
		s += k + " changed"
	}
	return s
}

// SyncResult answers POST /v1/sync.
type SyncResult struct {
	// Removed and Added are peer ids taken off / put on the devices.
	Removed []string `json:"removed,omitempty"`
	Took    string   `json:"took"`
}

// Status answers GET /v1/status.
type Status struct {
	Networks   []NetworkStatus `json:"networks"`
	StoreError string          `json:"store_error,omitempty"`
	ConfigPath string          `json:"config_path,omitempty"`
}

// NetworkStatus is one running network.
type NetworkStatus struct {
	Name      string `json:"name"`
	Interface string `json:"interface"`
	Peers     int    `json:"peers"`
}

// Error is the body of a failed request.
type Error struct {
	Error string `json:"error"`
}

// Client talks to the admin socket at Path.
type Client struct{ Path string }

func (c Client) do(ctx context.Context, method, path string, out any) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", c.Path)
	}}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://gateway"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("%w (no admin socket at %s)", ErrNoGateway, c.Path)
		}
		return fmt.Errorf("admin socket %s: %w", c.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin socket: %s: %s", resp.Status, body)
	}
	return json.Unmarshal(body, out)
}

// Reload asks the gateway to re-read its configuration file and apply the
// difference.
func (c Client) Reload(ctx context.Context) (ReloadResult, error) {
	var r ReloadResult
	err := c.do(ctx, http.MethodPost, PathReload, &r)
	return r, err
}

// Sync asks the gateway to re-read the store now; it returns once the
// devices match it.
func (c Client) Sync(ctx context.Context) (SyncResult, error) {
	var r SyncResult
	err := c.do(ctx, http.MethodPost, PathSync, &r)
	return r, err
}

// Status returns what the gateway runs.
func (c Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, PathStatus, &s)
	return s, err
}
