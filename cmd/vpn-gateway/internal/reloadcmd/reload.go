// Package reloadcmd implements `vpn-gateway reload`: validate the
// configuration file, then have the running gateway apply the difference
// (the same as sending it SIGHUP, but with the result printed here).
package reloadcmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// NewCmd returns `vpn-gateway reload`.
func NewCmd(io cmdutil.IO) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Apply the configuration file to the running gateway (networks added/removed, allow lists) without dropping other peers",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return Run(cmd.Context(), io, path) },
	}
	cmdutil.ConfigFlag(cmd, &path)
	return cmd
}

// Run validates the file and asks the gateway behind its admin socket to reload.
func Run(ctx context.Context, io cmdutil.IO, path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	res, err := admin.Client{Path: cfg.AdminSocket}.Reload(ctx)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Fprintf(io.Out, "Reloaded in %s: %s\n", res.Took, res.Summary())
	return nil
}
