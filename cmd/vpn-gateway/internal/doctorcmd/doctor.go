// Package doctorcmd implements `vpn-gateway doctor`: forwarding, devices,
// rules and tables, and a return route from each VPC to each pool, with the
// exact route to add in the cloud when one is missing.
package doctorcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/gwdoctor"
)

// Options are the inputs of `vpn-gateway doctor`.
type Options struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	Probes     []string
	JSON       bool
}

// NewCmd returns `vpn-gateway doctor`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check forwarding, rules, tables and each pool's return route (exit 0 healthy, 1 findings, 2 failed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	cmd.Flags().StringSliceVar(&o.Probes, "probe", nil, "hosts in the VPCs that answer ping, for the return-route check (besides each network's probe:)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (schema "+analysis.Schema+", the one vpn doctor prints)")
	return cmd
}

// Run checks and prints: exit status 1 for findings, 2 when the doctor
// itself failed.
func Run(ctx context.Context, o *Options) error {
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return cmdutil.Exit(2, err)
	}
	var probes []netip.Addr
	for _, p := range o.Probes {
		a, err := netip.ParseAddr(p)
		if err != nil {
			return cmdutil.Exit(2, fmt.Errorf("--probe %q: not an IP address", p))
		}
		probes = append(probes, a)
	}
	rep, err := gwdoctor.Check(ctx, gwdoctor.Options{Config: cfg, Probes: probes})
	if err != nil {
		return cmdutil.Exit(2, err)
	}
	if o.JSON {
		enc := json.NewEncoder(o.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return cmdutil.Exit(2, err)
		}
	} else {
		fmt.Fprint(o.IO.Out, gwdoctor.Text(*rep))
	}
	if !rep.Summary.Healthy {
		return cmdutil.Exit(1, nil)
	}
	return nil
}
