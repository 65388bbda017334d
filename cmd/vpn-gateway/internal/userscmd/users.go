// Package userscmd implements `vpn-gateway users disable|enable|list`: a
// disabled user's keys are revoked and no registration is accepted for them
// until they are enabled again, whatever their identity provider says.
package userscmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/peerscmd"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// Schema names the format of `vpn-gateway users list --json` (docs/JSON.md).
var Schema = jsonout.Schema("users", 1)

// Options are the inputs of `users disable`, `users enable` and `users list`.
type Options struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	// User is the USER argument (disable, enable).
	User string
	// Reason and NoNotify are disable's flags, JSON list's.
	Reason   string
	NoNotify bool
	JSON     bool
}

// NewCmd returns `vpn-gateway users`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Disable or enable users on this gateway"}
	cmd.AddCommand(NewDisableCmd(f, nil), NewEnableCmd(f, nil), NewListCmd(f, nil))
	return cmd
}

// runE fills o from the factory and the USER argument, then runs runF
// (tests) or real.
func runE(f *cmdutil.Factory, o *Options, runF, real func(context.Context, *Options) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
		if len(args) == 1 {
			o.User = args[0]
		}
		return cmdutil.Run(cmd.Context(), o, runF, real)
	}
}

// NewDisableCmd returns `users disable`. runF replaces Disable in tests.
func NewDisableCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "disable USER",
		Short: "Refuse USER's registrations and revoke their keys (USER: e-mail, subject, or the part before @)",
		Args:  cobra.ExactArgs(1),
		RunE:  runE(f, o, runF, Disable),
	}
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why, for the audit log and the user's error message")
	cmd.Flags().BoolVar(&o.NoNotify, "no-notify", false, "do not poke the local gateway over its admin socket")
	return cmd
}

// NewEnableCmd returns `users enable`. runF replaces Enable in tests.
func NewEnableCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return &cobra.Command{
		Use:   "enable USER",
		Short: "Accept USER's registrations again",
		Args:  cobra.ExactArgs(1),
		RunE:  runE(f, &Options{}, runF, Enable),
	}
}

// NewListCmd returns `users list`. runF replaces List in tests.
func NewListCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List disabled users",
		Args:  cobra.NoArgs,
		RunE:  runE(f, o, runF, List),
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (schema "+Schema+")")
	return cmd
}

// Disable records the user as disabled (by subject, and by e-mail when
// known) and revokes their keys (adminops.Disable), then reports and pokes
// the gateway as peers revoke does.
func Disable(ctx context.Context, o *Options) error {
	cfg, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	u, res, err := adminops.DisableNamed(ctx, st, adminops.LocalActor(), o.User, o.Reason)
	if u.Unresolved != nil {
		// Someone who never logged in can be disabled in advance, as named.
		fmt.Fprintf(o.IO.ErrOut, "note: %v; disabling %q as given\n", u.Unresolved, o.User)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "Disabled %s.\n", name(u))
	peerscmd.ReportRevoked(ctx, o.IO, cfg, res, o.NoNotify, start)
	return nil
}

func name(u adminops.Named) string {
	if u.Email != "" {
		return u.Email + " (" + u.Subject + ")"
	}
	return u.Subject
}

// Enable lifts a Disable.
func Enable(ctx context.Context, o *Options) error {
	_, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	u, found, err := adminops.EnableNamed(ctx, st, adminops.LocalActor(), o.User)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s is not disabled", o.User)
	}
	fmt.Fprintf(o.IO.Out, "Enabled %s: they may register again.\n", name(u))
	return nil
}

// List prints the disabled users.
func List(ctx context.Context, o *Options) error {
	_, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := st.DisabledUsers(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		return jsonout.List(o.IO.Out, Schema, "users", users)
	}
	t := cmdutil.NewTable(o.IO.Out, "USER", "DISABLED", "BY", "REASON")
	for _, u := range users {
		t.Row(api.Printable(u.Ident), u.Created.Local().Format(time.DateTime), u.Actor, api.Printable(u.Reason))
	}
	return t.Flush()
}
