// Package up implements `vpn up`.
package up

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/login"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/status"
	"github.com/clearpath-vpn/clearpath/internal/progress"
)

// Options are the inputs of `vpn up`.
type Options struct {
	Server    string
	TokenFile string
	Network   string
	Interface string
	Timeout   time.Duration
	JSON      bool
	// AllTraffic sends everything through the tunnel; BlockLAN then drops
	// the LAN exceptions.
	AllTraffic bool
	BlockLAN   bool
	// RouteLAN lets pushes take the LAN into the tunnel; MaxPrefixes
	// bounds how many prefixes the gateway may push.
	RouteLAN    bool
	MaxPrefixes int
	// RotateKey makes a new device key (the device keeps its addresses).
	RotateKey bool
	// MTU is --mtu: "" (the gateway's), "auto" or a number of bytes.
	MTU   string
	Login login.Options
	// FailClosed keeps a full tunnel's block when the registration
	// expires unrenewed.
	FailClosed bool
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
	cmd.Flags().StringVar(&o.Server, "server", "", "gateway URL, e.g. https://vpn.example.com (default: the last one you logged in to)")
	cmd.Flags().StringVar(&o.TokenFile, "token-file", "", "file holding a bearer token obtained elsewhere (automation); default: log in (cached, refreshed)")
	login.AddFlags(cmd, &o.Login)
	cmd.Flags().StringVar(&o.Network, "network", "", "network to join when you belong to several")
	cmd.Flags().StringVar(&o.Interface, "interface", "", "tunnel interface name (default: env CLEARPATH_INTERFACE or the first free cpN)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 15*time.Second, "how long to wait for traffic through the tunnel")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the resulting status as JSON (schema "+Schema+")")
	cmd.Flags().BoolVar(&o.AllTraffic, "all-traffic", false, "send all IPv4 and IPv6 traffic through the tunnel (the LAN stays reachable)")
	cmd.Flags().BoolVar(&o.BlockLAN, "block-lan", false, "with --all-traffic: do not keep the LAN outside the tunnel")
	cmd.Flags().BoolVar(&o.RouteLAN, "route-lan", false, "let prefixes the gateway pushes take this machine's LAN, router and resolvers into the tunnel")
	cmd.Flags().IntVar(&o.MaxPrefixes, "max-prefixes", 0, "most prefixes the gateway may push (default 1000); more are refused")
	cmd.Flags().BoolVar(&o.RotateKey, "rotate-key", false, "make a new device key for this registration (the addresses stay)")
	cmd.Flags().StringVar(&o.MTU, "mtu", "", "tunnel MTU in bytes, or auto: measure the path MTU through the tunnel and lower the MTU to it (default: the gateway's)")
	cmd.Flags().BoolVar(&o.FailClosed, "fail-closed", false, "with --all-traffic: if the registration expires unrenewed, keep blocking traffic instead of restoring routing")
	return cmd
}

// ReadToken reads a bearer token from path.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	if strings.ContainsAny(tok, " \n\t") {
		return "", fmt.Errorf("token file %s holds more than one token or stray text", path)
	}
	return tok, nil
}

// Run connects through the agent (starting it if needed).
func Run(ctx context.Context, f *factory.Factory, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := parseMTU(o.MTU, &control.UpRequest{}); err != nil {
		return err // before logging in or starting the agent
	}
	var tok string
	var err error
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
		if tok, err = ReadToken(o.TokenFile); err != nil {
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
	done := o.progress.Wait("the agent")
	c, err := f.EnsureAgent(ctx)
	done()
	if err != nil {
		return err
	}
	return connect(ctx, f, c, o, tok, start)
}

func connect(ctx context.Context, f *factory.Factory, c Agent, o *Options, tok string, start time.Time) error {
	req := control.UpRequest{Server: o.Server, Token: tok, Network: o.Network, Interface: o.Interface, Timeout: o.Timeout,
		AllTraffic: o.AllTraffic, BlockLAN: o.BlockLAN, RouteLAN: o.RouteLAN, MaxPrefixes: o.MaxPrefixes, RefreshToken: o.refreshToken, RotateKey: o.RotateKey, FailClosed: o.FailClosed}
	if o.sendTokenFile {
		req.TokenFile = o.TokenFile
	}
	if err := parseMTU(o.MTU, &req); err != nil {
		return err
	}
	if o.trust != nil {
		req.AllowHTTP, req.CAPEM = o.trust.Policy.AllowHTTP, o.trust.Policy.CAPEM
	}
	done := o.progress.Wait("the tunnel: registration at " + o.Server + ", handshake, a reply through it")
	st, err := c.Up(ctx, req)
	done()
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

// parseMTU reads --mtu: "auto", or a size from 576 (IPv4's minimum; below
// 1280 the tunnel carries IPv4 only) to 9000.
func parseMTU(v string, req *control.UpRequest) error {
	switch v {
	case "":
		return nil
	case "auto":
		req.AutoMTU = true
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < control.MinMTU || n > control.MaxMTU {
		return fmt.Errorf("--mtu %q: want auto or a number of bytes from %d to %d", v, control.MinMTU, control.MaxMTU)
	}
	req.MTU = n
	return nil
}
