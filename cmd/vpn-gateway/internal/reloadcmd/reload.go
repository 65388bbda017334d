// Package reloadcmd implements `vpn-gateway reload`: validate the
// configuration file, then have the running gateway apply the difference
// (the same as sending it SIGHUP, but with the result printed here).
package reloadcmd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// Schema names the format of `vpn-gateway reload --json` (docs/JSON.md).
var Schema = jsonout.Schema("reload", 1)

// Result is what a reload did, as --json prints it.
type Result struct {
	Config   string         `json:"config"`
	Changes  []admin.Change `json:"changes"`
	Settings []string       `json:"settings"`
	Took     string         `json:"took"`
	Summary  string         `json:"summary"`
}

// Options are the inputs of `vpn-gateway reload`.
type Options struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	JSON       bool
}

// NewCmd returns `vpn-gateway reload`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Apply the configuration file to the running gateway (networks added/removed, allow lists) without dropping other peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print what changed as JSON (schema "+Schema+")")
	return cmd
}

// Run validates the file and asks the gateway behind its admin socket to reload.
func Run(ctx context.Context, o *Options) error {
	path, io := o.ConfigPath, o.IO
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	c := admin.Client{Path: cfg.AdminSocket}
	// The gateway re-reads the file it was started with: say so if that
	// is not the one given here.
	if st, err := c.Status(ctx); err == nil && st.ConfigPath != "" {
		mine, _ := filepath.Abs(path)
		theirs, _ := filepath.Abs(st.ConfigPath)
		if mine != theirs {
			fmt.Fprintf(io.ErrOut, "note: the gateway reloads %s, not %s\n", st.ConfigPath, path)
		}
	}
	res, err := c.Reload(ctx)
	if err != nil {
		if errors.Is(err, admin.ErrNoGateway) {
			return fmt.Errorf("reload: no gateway answers on %s: start it (systemctl start clearpath-gateway, or vpn-gateway serve --config %s)", cfg.AdminSocket, path)
		}
		return fmt.Errorf("reload: %w", err)
	}
	if o.JSON {
		out := Result{Config: path, Changes: res.Changes, Settings: res.Settings, Took: res.Took, Summary: res.Summary()}
		if out.Changes == nil {
			out.Changes = []admin.Change{}
		}
		if out.Settings == nil {
			out.Settings = []string{}
		}
		return jsonout.Write(io.Out, Schema, out)
	}
	fmt.Fprintf(io.Out, "Reloaded in %s: %s\n", res.Took, res.Summary())
	return nil
}
