// Command vpn is the ClearPath client: `vpn up`, `vpn down`, `vpn status`,
// and the background `vpn agent` that holds the tunnel.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/agentcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/doctor"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/down"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/login"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/routescmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/status"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/up"
	"github.com/clearpath-vpn/clearpath/internal/clidocs"
	"github.com/clearpath-vpn/clearpath/internal/version"
)

func main() {
	f := factory.New()
	root := &cobra.Command{
		Use:           "vpn",
		Short:         "ClearPath VPN client: WireGuard with route hygiene",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&f.StateDir, "state-dir", f.StateDir, "client state directory (env VPN_STATE_DIR)")
	version.AddTo(root)
	clidocs.AddTo(root)
	root.AddCommand(up.NewCmd(f, nil), down.NewCmd(f, nil), status.NewCmd(f, nil), agentcmd.NewCmd(f), routescmd.NewCmd(f, nil), doctor.NewCmd(f, nil), login.NewCmd(f), login.NewLogoutCmd(f))
	if err := root.Execute(); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "vpn:", msg)
		}
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}
