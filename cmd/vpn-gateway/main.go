// Command vpn-gateway is the ClearPath gateway: it verifies OIDC tokens,
// gives each user a stable tunnel address and runs one WireGuard interface
// per group with its own routing table.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/auditcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/checkcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/devicescmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/doctorcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/explaincmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/healthcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/initcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/peerscmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/reloadcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/servecmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/userscmd"
	"github.com/clearpath-vpn/clearpath/internal/clidocs"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
	"github.com/clearpath-vpn/clearpath/internal/version"
)

// Environment lists the variables vpn-gateway reads (shown in --help).
var Environment = []envvar.Var{
	{Name: "WG_INFLIGHT", Help: "packets in flight per WireGuard direction (default 256; 0 unbounded)"},
	{Name: "DEBUG", Help: "1: as --debug, the full error chain and debug logs"},
}

func main() {
	f := cmdutil.New()
	root, debug := newRoot(f)
	os.Exit(cmdutil.Execute(root, "vpn-gateway", f.ErrOut, debug))
}

// newRoot builds the command tree; *debug is --debug once parsed.
func newRoot(f *cmdutil.Factory) (*cobra.Command, *bool) {
	root := &cobra.Command{
		Use:           "vpn-gateway",
		Short:         "ClearPath gateway: OIDC-authenticated WireGuard with per-group isolation",
		Long:          "ClearPath gateway: OIDC-authenticated WireGuard with per-group isolation.\n\n" + envvar.Help(Environment),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(f.Out)
	root.SetErr(f.ErrOut)
	debug := cmdutil.AddDebugFlag(root, "on failure print the whole error chain; serve logs at debug level", false)
	cmdutil.AddConfigFlag(root, f)
	root.AddCommand(
		servecmd.NewCmd(f, nil), initcmd.NewCmd(f, nil), checkcmd.NewCmd(f, nil), healthcmd.NewCmd(f, nil),
		reloadcmd.NewCmd(f, nil), peerscmd.NewCmd(f), devicescmd.NewCmd(f), userscmd.NewCmd(f),
		auditcmd.NewCmd(f, nil), explaincmd.NewCmd(f, nil), doctorcmd.NewCmd(f, nil))
	version.AddTo(root)
	clidocs.AddTo(root)
	addCompletions(root)
	return root, debug
}
