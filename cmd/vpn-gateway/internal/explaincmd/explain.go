// Package explaincmd implements `vpn-gateway explain USER HOST[:PORT]`:
// would this user reach that destination, and which rule or route decides,
// read from the live kernel tables of the gateway's namespace.
package explaincmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/explain"
)

// Options are the inputs of `vpn-gateway explain`.
type Options struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	Network    string
	Groups     []string
	JSON       bool
	// User and Target are the arguments.
	User, Target string
}

// NewCmd returns `vpn-gateway explain`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "explain USER HOST[:PORT][/PROTO]",
		Short: "Would USER reach HOST[:PORT], and which access rule or route decides (exit 0 yes, 1 no)",
		Long: "Judges the user's access rules (the eBPF filter: which user or group rule, widening, port) and\n" +
			"walks the gateway's policy rules and routing tables for a packet from the user's tunnel address\n" +
			"arriving on the network's WireGuard interface, confirmed with a real kernel lookup\n" +
			"(ip route get fibmatch HOST from ADDR iif WG). PROTO is tcp (default with a port), udp or icmp.\n" +
			"Run it on the gateway host, in its namespace.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			o.User, o.Target = args[0], args[1]
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	cmd.Flags().StringVar(&o.Network, "network", "", "explain for this network only (also if the user never joined it)")
	cmd.Flags().StringSliceVar(&o.Groups, "groups", nil, "OIDC groups to assume where the user has no key (a would-be member; a key's stored groups win)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

// Run explains and prints; exit status 1 when the user would not reach
// the target.
func Run(ctx context.Context, o *Options) error {
	user, target := o.User, o.Target
	tg, err := explain.ParseTarget(target)
	if err != nil {
		return err
	}
	cfg, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	subject, email, err := adminops.ResolveUser(ctx, st, user)
	if err != nil {
		if o.Network == "" {
			return err
		}
		subject, email = user, "" // explain for a would-be member
	}
	a, err := explain.Explain(ctx, explain.Request{Config: cfg, Store: st, Subject: subject, Email: email, Host: tg.Host, Port: tg.Port, Proto: tg.Proto, Groups: o.Groups, Network: o.Network, Now: time.Now()})
	if err != nil {
		return err
	}
	if o.JSON {
		if err := jsonout.Write(o.IO.Out, jsonout.Schema("explain", 1), a); err != nil {
			return err
		}
	} else {
		print(o.IO.Out, a)
	}
	if !a.Reachable {
		return cmdutil.Exit(1, nil)
	}
	return nil
}

func print(w io.Writer, a *explain.Answer) {
	verdict := "NO"
	if a.Reachable {
		verdict = "YES"
	}
	fmt.Fprintf(w, "%s: %s\n", verdict, a.Summary)
	if a.Disabled != "" {
		fmt.Fprintf(w, "  user %s\n", a.Disabled)
	}
	for _, v := range a.Networks {
		mark := "refused"
		if v.Allowed {
			mark = "allowed"
		}
		fmt.Fprintf(w, "\nnetwork %s (group %s, %s): %s -> %s %s\n", v.Network, v.Group, v.Interface, cmdutil.Dash(v.Source), v.Destination, mark)
		fmt.Fprintf(w, "  key:     %s\n", v.Key)
		if v.Access != nil {
			fmt.Fprintf(w, "  access:  %s\n", v.Access.Why)
		}
		fmt.Fprintf(w, "  client:  %s\n", map[bool]string{true: "routes it into the tunnel (inside the allowed CIDRs)", false: "does not route it into the tunnel (outside the allowed CIDRs)"}[v.ClientRoutes])
		for i, p := range v.Path {
			label := "  path:    "
			if i > 0 {
				label = "           "
			}
			fmt.Fprintln(w, label+p)
		}
		if v.Rule != "" {
			fmt.Fprintf(w, "  decided: rule %q, route %q\n", v.Rule, cmdutil.Dash(v.Route))
		}
		fmt.Fprintf(w, "  kernel:  %s\n", v.Kernel)
		fmt.Fprintf(w, "  why:     %s\n", v.Why)
	}
	if a.PortComment != "" {
		fmt.Fprintf(w, "\nnote: %s\n", strings.TrimSpace(a.PortComment))
	}
}
