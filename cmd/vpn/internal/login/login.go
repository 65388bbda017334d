// Package login implements `vpn login` and `vpn logout`.
package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/trust"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/progress"
)

// Options are the inputs of `vpn login`.
type Options struct {
	Server string
	Trust  TrustFlags
	// ResetServer forgets the server's pinned identity provider (and
	// cached tokens) before logging in: accepts a changed provider.
	ResetServer bool
	auth.LoginOptions
}

// ResolveServer picks the server: the flag, else the last one logged in to.
func ResolveServer(cache *auth.Cache, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if s := cache.DefaultServer(); s != "" {
		return s, nil
	}
	return "", errors.New("--server is required the first time (the gateway URL, e.g. https://vpn.example.com)")
}

// NewCmd returns `vpn login`. runF replaces Run in tests.
func NewCmd(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in with your identity provider (browser, or a code on headless machines)",
		Long: `Log in to the gateway's identity provider and cache the tokens for this user.
Opens the browser (authorization code + PKCE on a loopback redirect); where no
browser can be opened (no display, over SSH) or with --device, prints a URL,
a code and a QR code to approve from another device.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Trust.Seen(cmd)
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return Run(cmd.Context(), f, o)
		},
	}
	AddFlags(cmd, o)
	cmd.Flags().BoolVar(&o.ResetServer, "reset-server", false, "accept a changed identity provider for this server (forget its pinned issuer and client id)")
	return cmd
}

// Run logs in and hands the new login to a connected agent.
func Run(ctx context.Context, f *factory.Factory, o *Options) error {
	cache, err := auth.DefaultCache()
	if err != nil {
		return err
	}
	server, err := ResolveServer(cache, o.Server)
	if err != nil {
		return err
	}
	if o.ResetServer {
		if err := cache.ResetPin(server); err != nil {
			return err
		}
		fmt.Fprintf(f.Out, "Forgot the identity provider pinned for %s; this login pins the one it names now.\n", server)
	}
	tr, err := ResolveTrust(cache, server, o.Trust, f.ErrOut)
	if err != nil {
		return err
	}
	start := time.Now()
	o.Force = true
	o.HTTP = tr.HTTP
	done := progress.New(f.ErrOut).Wait("the gateway at " + server + " and your login")
	t, err := auth.Obtain(ctx, cache, server, f.Out, o.LoginOptions)
	done()
	if err != nil {
		return err
	}
	fmt.Fprintf(f.Out, "Logged in to %s as %s (groups: %v) in %v; token valid until %s.\n",
		server, t.Who(), t.Groups, time.Since(start).Round(time.Millisecond), t.Expiry.Local().Format(time.RFC1123))
	return handOver(ctx, f, server, t.IDToken, t.RefreshToken, tr)
}

// handOver gives a fresh login to an agent connected to server: it
// re-registers in place with a new device key (same addresses, tunnel
// kept). The tokens travel as bytes; the agent keeps the refresh token in
// memory for later renewals and never touches the cache. Without a
// connected agent there is nothing to do.
func handOver(ctx context.Context, f *factory.Factory, server, token, refresh string, tr *Trust) error {
	c := f.Control()
	st, err := c.Status(ctx)
	if err != nil || st.State != control.StateUp || st.Server != server {
		return nil
	}
	st, err = c.Up(ctx, control.UpRequest{Server: server, Network: st.Network, Token: token, RefreshToken: refresh, RotateKey: true,
		AllowHTTP: tr.Policy.AllowHTTP, CAPEM: tr.Policy.CAPEM})
	if err != nil {
		return fmt.Errorf("logged in, but the connected agent could not re-register: %w", err)
	}
	fmt.Fprintf(f.Out, "Re-registered the connected device with a new key (%s); addresses kept: %v.\n", st.PublicKey, st.Addresses)
	return nil
}

// AddFlags adds the login flags (shared with `vpn up`).
func AddFlags(cmd *cobra.Command, o *Options) {
	if cmd.Flags().Lookup("server") == nil {
		cmd.Flags().StringVar(&o.Server, "server", "", "gateway URL (default: the last one you logged in to)")
	}
	cmd.Flags().BoolVar(&o.Device, "device", false, "log in with a code from another device instead of this machine's browser")
	cmd.Flags().BoolVar(&o.NoBrowser, "no-browser", false, "print the login URL instead of opening the browser")
	cmd.Flags().IntVar(&o.Port, "port", 0, "loopback port for the login redirect (default: any free port)")
	cmd.Flags().DurationVar(&o.Timeout, "login-timeout", 5*time.Minute, "how long to wait for the login")
	addTrustFlags(cmd, &o.Trust)
}

// LogoutOptions are the inputs of `vpn logout`.
type LogoutOptions struct {
	Server string
}

// NewLogoutCmd returns `vpn logout`. runF replaces RunLogout in tests.
func NewLogoutCmd(f *factory.Factory, runF func(context.Context, *LogoutOptions) error) *cobra.Command {
	o := &LogoutOptions{}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the session at the provider (where supported) and forget the cached tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return RunLogout(cmd.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.Server, "server", "", "gateway URL (default: the last one you logged in to)")
	return cmd
}

// RunLogout revokes the session at the provider where it can and deletes
// the cached tokens.
func RunLogout(ctx context.Context, f *factory.Factory, o *LogoutOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cache, err := auth.DefaultCache()
	if err != nil {
		return err
	}
	if o.Server == "" && cache.DefaultServer() == "" {
		fmt.Fprintln(f.Out, "Not logged in: there is nothing to log out of.")
		return nil
	}
	server, err := ResolveServer(cache, o.Server)
	if err != nil {
		return err
	}
	t, err := cache.Load(server)
	if err != nil || t == nil {
		cache.Delete(server)
		fmt.Fprintf(f.Out, "Not logged in to %s.\n", server)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	revoked := false
	var hc *http.Client
	if s, err := cache.LoadSettings(server); err == nil && s.CAFile != "" {
		if pem, err := os.ReadFile(s.CAFile); err == nil {
			hc, _ = trust.HTTPClient(trust.Policy{CAPEM: pem}, 10*time.Second)
		}
	}
	if c, err := auth.NewPinned(ctx, cache, server, f.ErrOut, hc); err == nil {
		if revoked, err = c.Revoke(ctx, t); err != nil {
			fmt.Fprintf(f.ErrOut, "warning: %v\n", err)
		}
	}
	if err := cache.Delete(server); err != nil {
		return err
	}
	how := "the provider offers no revocation; the cached tokens are deleted"
	if revoked {
		how = "the session is revoked at the provider and the cached tokens are deleted"
	}
	fmt.Fprintf(f.Out, "Logged out of %s (%s): %s.\n", server, t.Who(), how)
	return nil
}
