// Package up implements `vpn up`.
package up

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/login"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/status"
	"github.com/clearpath-vpn/clearpath/internal/progress"
)

// Options are the inputs of `vpn up`.
type Options struct {
	// UpOptions are the flags `vpn up` shares with the tray.
	local.UpOptions
	JSON bool
	// RotateKey makes a new device key (the device keeps its addresses).
	RotateKey bool
	Login     login.Options
	// refreshToken is the user's refresh token from their own cache, sent
	// as bytes so the agent can renew the registration (it keeps it in
	// memory and never touches the cache).
	refreshToken string
	// sendTokenFile: the agent may re-read the token file (root only).
	sendTokenFile bool
	// trust is how the server is reached (--allow-http, --ca-file).
	trust *login.Trust
	// progress names the waits on a terminal (nil: silent).
	progress *progress.Reporter
}

// Agent is the part of the agent connection `up` needs.
type Agent interface {
	Up(ctx context.Context, req control.UpRequest) (*control.Status, error)
}

// starter is an Agent that can start the agent when none answers
// (local.Client.Ensure).
type starter interface {
	Ensure(ctx context.Context) error
}

// NewCmd returns `vpn up`. run replaces the effect in tests.
func NewCmd(f *factory.Factory, run func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Connect: register this device with the gateway and bring the tunnel up",
		Long: `Connect to a ClearPath gateway. Returns only once a WireGuard handshake happened
and a reply came back through the tunnel; otherwise everything is rolled back and the
reason is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Login.Trust.Seen(cmd)
			if run != nil {
				return run(cmd.Context(), o)
			}
			return Run(cmd.Context(), f, o)
		},
	}
	local.AddUpFlags(cmd.Flags(), &o.UpOptions)
	login.AddFlags(cmd, &o.Login)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the resulting status as JSON (schema "+Schema+")")
	cmd.Flags().BoolVar(&o.RotateKey, "rotate-key", false, "make a new device key for this registration (the addresses stay)")
	return cmd
}

// Run connects through the agent (starting it if needed).
func Run(ctx context.Context, f *factory.Factory, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, err := o.Request(); err != nil {
		return err // before logging in or starting the agent
	}
	var tok string
	var err error
	began := time.Now()
	if o.progress == nil {
		o.progress = progress.New(f.ErrOut)
	}
	cache, err := auth.DefaultCache()
	if err != nil {
		return err
	}
	if o.TokenFile != "" {
		if o.Server == "" {
			return errors.New("--server is required with --token-file (the gateway URL)")
		}
		if o.trust, err = login.ResolveTrust(cache, o.Server, o.Login.Trust, f.ErrOut); err != nil {
			return err
		}
		if tok, err = control.ReadTokenFile(o.TokenFile); err != nil {
			return err
		}
		// Root's agent re-reads root's file to renew the registration;
		// for anyone else only the token's bytes travel (the agent never
		// opens a user's path), and the session ends at its expiry.
		if os.Geteuid() == 0 {
			if o.TokenFile, err = filepath.Abs(o.TokenFile); err != nil {
				return err
			}
			o.sendTokenFile = true
		}
	} else {
		// Log in here, as the user who typed the command; only the
		// token goes to the (root) agent.
		if o.Server, err = login.ResolveServer(cache, o.Server); err != nil {
			return err
		}
		if o.trust, err = login.ResolveTrust(cache, o.Server, o.Login.Trust, f.ErrOut); err != nil {
			return err
		}
		o.Login.HTTP = o.trust.HTTP
		done := o.progress.Wait("the gateway at " + o.Server + " and your login")
		t, err := auth.Obtain(ctx, cache, o.Server, f.ErrOut, o.Login.LoginOptions)
		done()
		if err != nil {
			return err
		}
		tok, o.refreshToken = t.IDToken, t.RefreshToken
	}
	start := time.Now()
	agentReady := start
	err = connect(ctx, f, f.Control(), o, tok, start, &agentReady)
	// `vpn up --debug`: where the command's own time went (the agent logs
	// its steps as "connect phases"). agent_ms is starting the agent; with
	// one running, the up request finds it (up_ms).
	slog.Debug("up phases", "token_ms", msSince(began, start), "agent_ms", msSince(start, agentReady),
		"up_ms", msSince(agentReady, time.Now()), "total_ms", msSince(began, time.Now()))
	return err
}

func msSince(from, to time.Time) float64 { return float64(to.Sub(from).Microseconds()) / 1000 }

// connect sends the up request. The request itself finds out whether an
// agent runs (no status round trip first): when none answers (or one on
// its way out dropped it), c starts one, as local.Client.Ensure, and the
// request goes to it; *agentReady is then when it answered.
func connect(ctx context.Context, f *factory.Factory, c Agent, o *Options, tok string, start time.Time, agentReady *time.Time) error {
	req, err := o.Request()
	if err != nil {
		return err
	}
	req.Token, req.RefreshToken, req.RotateKey = tok, o.refreshToken, o.RotateKey
	if o.sendTokenFile {
		req.TokenFile = o.TokenFile
	}
	if o.trust != nil {
		req.AllowHTTP, req.CAPEM = o.trust.Policy.AllowHTTP, o.trust.Policy.CAPEM
	}
	up := func() (*control.Status, error) {
		done := o.progress.Wait("the tunnel: registration at " + o.Server + ", handshake, a reply through it")
		defer done()
		return c.Up(ctx, req)
	}
	st, err := up()
	if s, ok := c.(starter); ok && (errors.Is(err, control.ErrNoAgent) || errors.Is(err, control.ErrTransient)) {
		done := o.progress.Wait("the agent")
		err = s.Ensure(ctx)
		done()
		if err != nil {
			return err
		}
		if agentReady != nil {
			*agentReady = time.Now()
		}
		st, err = up()
	}
	var refused *control.AccessError
	if errors.Is(err, control.ErrNoAccess) && !errors.As(err, &refused) {
		return err // the socket refused us: no up was asked, as a status says it
	}
	if err != nil {
		return fmt.Errorf("up failed: %w", err)
	}
	for _, n := range st.Notices {
		fmt.Fprintf(f.ErrOut, "notice: %s\n", n)
	}
	if o.JSON {
		return writeJSON(f, st)
	}
	fmt.Fprintf(f.Out, "Connected to %s (network %s) in %d ms\n", st.Server, st.Network, time.Since(start).Milliseconds())
	fmt.Fprintf(f.Out, "  interface  %s\n  addresses  %s\n  endpoint   %s\n  routes     %s\n",
		st.Interface, strings.Join(st.Addresses, ", "), st.Endpoint, strings.Join(st.AllowedIPs, ", "))
	if st.ExpiresAt != nil {
		fmt.Fprintf(f.Out, "  expires    %s\n", st.ExpiresAt.Local().Format(time.RFC1123))
	}
	if d := status.DNSRow(st.DNS); d != "" {
		fmt.Fprintf(f.Out, "  dns        %s\n", d)
	}
	return nil
}
