// Package agentcmd implements `vpn agent`, the background process.
package agentcmd

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
	"github.com/clearpath-vpn/clearpath/internal/memlimit"
)

// Options are the inputs of `vpn agent`: the agent's configuration, its
// state dir and socket filled from the factory when not given.
type Options struct {
	IO     cmdutil.IOStreams
	Config agent.Config
}

// NewCmd returns `vpn agent`. runF replaces Run in tests.
func NewCmd(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the background agent that holds the tunnel (started by `vpn up` when needed)",
		Long: `Run the background agent (as root) that holds the tunnel.

Its socket (/run/clearpath/agent.sock for the default state dir) is
root:clearpath 0660: members of the group may connect (to the configured
server, choosing among the networks the gateway offers them), disconnect and
read the status; only root may name token files, interfaces or another server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO = f.IOStreams
			o.Config.Dir = f.StateDir
			if o.Config.Socket == "" {
				o.Config.Socket = f.Socket()
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return Run(o)
		},
	}
	cmd.Flags().StringVar(&o.Config.Socket, "socket", "", "control socket (default /run/clearpath/agent.sock, or agent.sock in a non-default --state-dir; env CLEARPATH_SOCKET)")
	cmd.Flags().StringVar(&o.Config.Group, "group", "", `group (name or gid) whose members may use the agent (default "clearpath" when it exists; "-" for root only)`)
	cmd.Flags().StringVar(&o.Config.Server, "server", envvar.Get("SERVER"), "the gateway URL group members may connect to (env CLEARPATH_SERVER, e.g. in /etc/clearpath/agent.env for the service; default: the state dir's server file, written by the first root vpn up)")
	cmd.Flags().BoolVar(&o.Config.FailClosed, "fail-closed", false, "when a full tunnel's registration expires unrenewed, keep its routes (block all traffic) instead of restoring routing")
	return cmd
}

// Run runs the agent until SIGINT or SIGTERM.
func Run(o *Options) error {
	log := slog.New(slog.NewTextHandler(o.IO.ErrOut, nil))
	if limit := memlimit.Apply(log); limit > 0 {
		log.Info("memory limit", "mib", limit>>20, "override", memlimit.Env+" or GOMEMLIMIT")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return agent.Run(ctx, o.Config, log)
}
