package auth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"
)

// LoginOptions choose how to log in when a login is needed.
type LoginOptions struct {
	Device    bool // device flow even where a browser could open
	NoBrowser bool // browser flow, but print the URL instead of opening it
	Port      int  // loopback redirect port (0: any free one)
	Force     bool // log in even with valid cached tokens
	Timeout   time.Duration
	// HTTP reaches the gateway and the provider (a client trusting the
	// user's --ca-file); nil means the default client.
	HTTP *http.Client
}

// Obtain returns valid tokens for server: cached ones, silently refreshed
// ones, or, failing both, a new login (browser or device flow).
func Obtain(ctx context.Context, cache *Cache, server string, out io.Writer, o LoginOptions) (*Tokens, error) {
	cached, err := cache.Load(server)
	if err != nil {
		fmt.Fprintf(out, "%v; logging in again.\n", err)
		cached = nil
	}
	if !o.Force && cached.Valid(time.Now(), time.Minute) {
		return cached, nil
	}
	c, err := NewWithHTTP(ctx, server, out, o.HTTP)
	if err != nil {
		return nil, err
	}
	if !o.Force && cached != nil && cached.RefreshToken != "" {
		t, err := c.Refresh(ctx, cached)
		if err == nil {
			if err := cache.Save(t); err != nil {
				return nil, err
			}
			return t, nil
		}
		fmt.Fprintf(out, "Your session could not be refreshed (%v): logging in again.\n", err)
	}
	var t *Tokens
	if o.Device || (!o.NoBrowser && !CanOpenBrowserHere(runtime.GOOS)) {
		dctx := ctx
		if o.Timeout > 0 {
			var cancel context.CancelFunc
			dctx, cancel = context.WithTimeout(ctx, o.Timeout)
			defer cancel()
		}
		t, err = c.DeviceLogin(dctx)
	} else {
		t, err = c.BrowserLogin(ctx, BrowserOptions{Port: o.Port, NoBrowser: o.NoBrowser, Timeout: o.Timeout})
	}
	if err != nil {
		return nil, err // nothing is cached from a failed login
	}
	if err := cache.Save(t); err != nil {
		return nil, err
	}
	return t, nil
}
