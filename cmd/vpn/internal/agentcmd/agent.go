// Package agentcmd implements `vpn agent`, the background process.
package agentcmd

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/local"
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
	// ReadyFD is the inherited readiness pipe of the CLI that started
	// the agent (--ready-fd; 0: none, as under a service manager).
	ReadyFD int
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
	cmd.Flags().IntVar(&o.ReadyFD, local.ReadyFlag, 0, "descriptor of the readiness pipe of the vpn that started this agent (set by vpn up)")
	cmd.Flags().MarkHidden(local.ReadyFlag)
	cmd.Flags().BoolVar(&o.Config.FailClosed, "fail-closed", false, "when a full tunnel's registration expires unrenewed, keep its routes (block all traffic) instead of restoring routing")
	return cmd
}

// Run runs the agent until SIGINT or SIGTERM. With a readiness pipe, it
// says there when the agent answers, or why it will not.
func Run(o *Options) error {
	var ready *local.Notifier
	if o.ReadyFD > 0 {
		var err error
		if ready, err = local.OpenNotifier(o.ReadyFD); err != nil {
			return err
		}
		o.Config.Ready = ready.Ready
	}
	log := slog.New(slog.NewTextHandler(o.IO.ErrOut, nil))
	if limit := memlimit.Apply(log); limit > 0 {
		log.Info("memory limit", "mib", limit>>20, "override", memlimit.Env+" or GOMEMLIMIT")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := agent.Run(ctx, o.Config, log)
	if err != nil {
		ready.Fail(err, errors.Is(err, agent.ErrRunning)) // no-op once ready
	}
	return err
}
