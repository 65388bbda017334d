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
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/memlimit"
)

// NewCmd returns `vpn agent`.
func NewCmd(f *factory.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "Run the background agent that holds the tunnel (started by `vpn up` when needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(f.ErrOut, nil))
			if limit := memlimit.Apply(log); limit > 0 {
				log.Info("memory limit", "mib", limit>>20, "override", memlimit.Env+" or GOMEMLIMIT")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return agent.Run(ctx, f.StateDir, log)
		},
	}
}
