// Package status implements `vpn status`.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/internal/units"
	"github.com/clearpath-vpn/clearpath/internal/version"
)

// Schema names the format of `vpn status --json` and `vpn up --json`
// (docs/JSON.md).
var Schema = jsonout.Schema("status", 1)

// Options are the inputs of `vpn status`.
type Options struct{ JSON bool }

// NewCmd returns `vpn status`. get replaces the agent in tests.
func NewCmd(f *factory.Factory, get func(context.Context) (*control.Status, error)) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the tunnel's state, addresses, handshake and traffic",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if get == nil {
				get = f.Control().Status
			}
			st, err := get(cmd.Context())
			if errors.Is(err, control.ErrNoAccess) {
				// Never "down" when we just cannot see: a tunnel may be up.
				return fmt.Errorf("cannot tell the tunnel's state: %w", err)
			}
			if errors.Is(err, control.ErrNoAgent) {
				st, err = &control.Status{State: control.StateDown}, nil
			}
			if err != nil {
				return err
			}
			st.ClientVersion = version.String()
			if cache, err := auth.DefaultCache(); err == nil {
				server := st.Server
				if server == "" {
					server = cache.DefaultServer()
				}
				if t, err := cache.Load(server); err == nil && t != nil {
					exp := t.Expiry.UTC()
					st.Login = &control.Login{Server: server, User: t.Who(), TokenExpiry: &exp, CanRefresh: t.RefreshToken != ""}
				}
			}
			if o.JSON {
				return jsonout.Write(f.Out, Schema, st)
			}
			Print(f.Out, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (schema "+Schema+")")
	return cmd
}

// Print renders st for people.
func Print(w io.Writer, st *control.Status) {
	fmt.Fprintf(w, "state       %s\n", st.State)
	if l := st.Login; l != nil {
		when := "expired"
		if l.TokenExpiry.After(time.Now()) {
			when = "valid until " + l.TokenExpiry.Local().Format(time.RFC1123)
		}
		if l.CanRefresh {
			when += " (refreshed automatically)"
		}
		fmt.Fprintf(w, "logged in   %s at %s, token %s\n", l.User, l.Server, when)
	}
	if st.Error != "" {
		fmt.Fprintf(w, "last error  %s\n", st.Error)
	}
	if st.State != control.StateUp {
		fmt.Fprintf(w, "%-11s %s\n", "versions", Versions(st))
		return
	}
	who := st.Email
	if who == "" {
		who = st.User
	}
	rows := [][2]string{
		{"server", st.Server}, {"network", st.Network}, {"user", who}, {"interface", st.Interface},
		{"addresses", strings.Join(st.Addresses, ", ")}, {"endpoint", st.Endpoint},
	}
	if st.HandshakeAgeSec != nil {
		rows = append(rows, [2]string{"handshake", units.Duration(time.Duration(*st.HandshakeAgeSec*float64(time.Second))) + " ago"})
	}
	rows = append(rows, [2]string{"transfer", fmt.Sprintf("%s received, %s sent", units.Bytes(st.RxBytes), units.Bytes(st.TxBytes))})
	if st.ExpiresAt != nil {
		rows = append(rows, [2]string{"expires", st.ExpiresAt.Local().Format(time.RFC1123)})
	}
	if st.RenewAt != nil {
		renew := st.RenewAt.Local().Format(time.RFC1123)
		if st.TokenSource != "" {
			renew += " (token from " + st.TokenSource + ")"
		} else {
			renew += " (no token source: run vpn up again before it expires)"
		}
		rows = append(rows, [2]string{"renews", renew})
	}
	if st.RenewError != "" {
		rows = append(rows, [2]string{"renewal", "failing: " + st.RenewError})
	}
	if st.DeviceID != "" {
		rows = append(rows, [2]string{"device", st.DeviceID + " key " + st.PublicKey})
	}
	mode := "split tunnel (only the routes below)"
	if st.FullTunnel {
		mode = "full tunnel (all traffic of a family, as installed)"
	}
	rows = append(rows, [2]string{"mode", mode})
	if d := DNSRow(st.DNS); d != "" {
		rows = append(rows, [2]string{"dns", d})
	}
	for _, n := range st.Notices {
		rows = append(rows, [2]string{"notice", n})
	}
	rows = append(rows, [2]string{"versions", Versions(st)})
	for _, r := range rows {
		fmt.Fprintf(w, "%-11s %s\n", r[0], r[1])
	}
	if len(st.Overlaps) > 0 {
		fmt.Fprintln(w, "overlaps (pushed prefix vs. this machine's route: who wins):")
		for _, o := range st.Overlaps {
			why := ""
			if o.Reason != "" {
				why = " (" + o.Reason + ")"
			}
			fmt.Fprintf(w, "  %-18s %-40s %s wins%s\n", o.Pushed, o.Local, o.Winner, why)
		}
	}
	if len(st.Routes)+len(st.Rules) > 0 {
		fmt.Fprintln(w, "routes installed:")
		for _, r := range st.Routes {
			fmt.Fprintf(w, "  %s\n", r)
		}
		for _, r := range st.Rules {
			fmt.Fprintf(w, "  rule %s\n", r)
		}
	}
}

// Versions names both ends' software: "client v1.2.0, agent v1.2.0, gateway
// v1.1.0"; a part nobody reported (no agent, no registration yet) is left
// out, and an agent older or newer than the CLI stands out.
func Versions(st *control.Status) string {
	var parts []string
	for _, p := range [][2]string{{"client", st.ClientVersion}, {"agent", st.AgentVersion}, {"gateway", st.GatewayVersion}} {
		if p[1] != "" {
			parts = append(parts, p[0]+" "+p[1])
		}
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ")
}
