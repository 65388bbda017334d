// Package userscmd implements `vpn-gateway users disable|enable|list`: a
// disabled user's keys are revoked and no registration is accepted for them
// until they are enabled again, whatever their identity provider says.
package userscmd

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/peerscmd"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Schema names the format of `vpn-gateway users list --json` (docs/JSON.md).
var Schema = jsonout.Schema("users", 1)

// NewCmd returns `vpn-gateway users`.
func NewCmd(io cmdutil.IO) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Disable or enable users on this gateway"}
	var configPath, reason string
	var noNotify, asJSON bool
	disable := &cobra.Command{
		Use:   "disable USER",
		Short: "Refuse USER's registrations and revoke their keys (USER: e-mail, subject, or the part before @)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return Disable(cmd.Context(), io, configPath, args[0], reason, noNotify)
		},
	}
	cmdutil.ConfigFlag(disable, &configPath)
	disable.Flags().StringVar(&reason, "reason", "", "why, for the audit log and the user's error message")
	disable.Flags().BoolVar(&noNotify, "no-notify", false, "do not poke the local gateway over its admin socket")
	enable := &cobra.Command{
		Use:   "enable USER",
		Short: "Accept USER's registrations again",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return Enable(cmd.Context(), io, configPath, args[0]) },
	}
	cmdutil.ConfigFlag(enable, &configPath)
	list := &cobra.Command{
		Use:   "list",
		Short: "List disabled users",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return List(cmd.Context(), io, configPath, asJSON) },
	}
	cmdutil.ConfigFlag(list, &configPath)
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema "+Schema+")")
	cmd.AddCommand(disable, enable, list)
	return cmd
}

// Disable records the user as disabled (by subject, and by e-mail when
// known) and revokes their keys.
func Disable(ctx context.Context, io cmdutil.IO, configPath, user, reason string, noNotify bool) error {
	cfg, st, err := cmdutil.Open(ctx, configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	subject, email, err := cmdutil.ResolveUser(ctx, st, user)
	if err != nil {
		// Someone who never logged in can be disabled in advance, as named.
		subject, email = user, ""
		fmt.Fprintf(io.ErrOut, "note: %v; disabling %q as given\n", err, user)
	}
	who := adminops.Actor{Name: cmdutil.Actor(), Remote: cmdutil.Remote()}
	// Record the disabling and revoke the keys in the store (shared with
	// the admin page), then report and poke the gateway as peers revoke does.
	res, err := adminops.Disable(ctx, st, who, subject, email, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "Disabled %s.\n", name(subject, email))
	var peers []store.Peer
	for _, r := range res {
		if !r.Gone {
			peers = append(peers, r.Peer)
		}
	}
	if len(peers) == 0 {
		return nil
	}
	_, err = peerscmd.ReportRevoked(ctx, io, cfg, res, noNotify)
	return err
}

func name(subject, email string) string {
	if email != "" {
		return email + " (" + subject + ")"
	}
	return subject
}

// Enable lifts a Disable.
func Enable(ctx context.Context, io cmdutil.IO, configPath, user string) error {
	_, st, err := cmdutil.Open(ctx, configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	subject, email, err := cmdutil.ResolveUser(ctx, st, user)
	if err != nil {
		subject, email = user, ""
	}
	found, err := adminops.Enable(ctx, st, adminops.Actor{Name: cmdutil.Actor(), Remote: cmdutil.Remote()}, subject, email, user)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s is not disabled", user)
	}
	fmt.Fprintf(io.Out, "Enabled %s: they may register again.\n", name(subject, email))
	return nil
}

// List prints the disabled users.
func List(ctx context.Context, io cmdutil.IO, configPath string, asJSON bool) error {
	_, st, err := cmdutil.Open(ctx, configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := st.DisabledUsers(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return jsonout.List(io.Out, Schema, "users", users)
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tDISABLED\tBY\tREASON")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", api.Printable(u.Ident), u.Created.Local().Format(time.DateTime), u.Actor, api.Printable(u.Reason))
	}
	return tw.Flush()
}
