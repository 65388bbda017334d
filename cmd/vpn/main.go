// Command vpn is the ClearPath client: `vpn up`, `vpn down`, `vpn status`,
// and the background `vpn agent` that holds the tunnel.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/agentcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/doctor"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/down"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/login"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/routescmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/status"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/up"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
	"github.com/clearpath-vpn/clearpath/internal/version"
)

// Environment lists the variables vpn reads (shown in --help; the
// README's Environment table lists the same).
var Environment = []envvar.Var{
	{Name: "STATE_DIR", Help: "client state directory, as --state-dir (default /var/lib/clearpath)"},
	{Name: "CONFIG_DIR", Help: "where logins and per-server settings are kept (default ~/.config/clearpath)"},
	{Name: "SOCKET", Help: "the agent's control socket (default /run/clearpath/agent.sock)"},
	{Name: "INTERFACE", Help: "tunnel interface for vpn up (root only; default the first free cpN)"},
	{Name: "SERVER", Help: "vpn agent: the gateway URL clearpath group members may use"},
	{Name: "MEMORY_LIMIT", Help: "the agent's Go memory limit (default 64MiB; off; GOMEMLIMIT wins)"},
	{Name: "WG_INFLIGHT", Help: "packets in flight per tunnel direction (default 256; 0 unbounded)"},
	{Name: "DEBUG", Help: "1: as --debug, the full error chain"},
}

func main() {
	f := factory.New()
	root, debug := newRoot(f)
	os.Exit(cmdutil.Execute(root, "vpn", f.ErrOut, debug))
}

// newRoot builds the command tree; *debug is --debug once parsed.
func newRoot(f *factory.Factory) (*cobra.Command, *bool) {
	root := &cobra.Command{
		Use:           "vpn",
		Short:         "ClearPath VPN client: WireGuard with route hygiene",
		Long:          "ClearPath VPN client: WireGuard with route hygiene.\n\n" + envvar.Help(Environment),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	local.AddStateDirFlag(root.PersistentFlags(), &f.StateDir)
	// CLEARPATH_DEBUG=1 is exported: an agent this run starts inherits it.
	debug := cmdutil.AddDebugFlag(root, "on failure print the whole error chain, and log what is done", true)
	version.AddTo(root)
	addGenMan(root)
	root.AddCommand(up.NewCmd(f, nil), down.NewCmd(f, nil), status.NewCmd(f, nil), agentcmd.NewCmd(f, nil), routescmd.NewCmd(f, nil), doctor.NewCmd(f, nil), login.NewCmd(f, nil), login.NewLogoutCmd(f, nil))
	addCompletions(root, f)
	return root, debug
}
