// Package auditcmd implements `vpn-gateway audit`: the audit log of the
// store named by --config, filtered by time, user and action.
package auditcmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Options are the inputs of `vpn-gateway audit`.
type Options struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	Since      string
	User       string
	Action     string
	Limit      int
	JSON       bool
	Now        func() time.Time
}

// Schema names the format of `vpn-gateway audit --json` (docs/JSON.md).
var Schema = jsonout.Schema("audit", 1)

// NewCmd returns `vpn-gateway audit`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: logins, registrations, refreshes, expiries, warnings, revocations, reloads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	cmd.Flags().StringVar(&o.Since, "since", "", "only entries newer than a duration (24h, 90m) or a time (2026-11-01, RFC 3339)")
	cmd.Flags().StringVar(&o.User, "user", "", "only entries by or about this user (e-mail, subject or the part before @)")
	cmd.Flags().StringVar(&o.Action, "action", "", "only this action (login, register, refresh, delete, expire, warn, revoke, disable, enable, refuse, reload, start, stop)")
	cmd.Flags().IntVar(&o.Limit, "limit", 0, "only the newest N entries")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (schema "+Schema+": the records in \"records\")")
	return cmd
}

// ParseSince reads --since: a duration back from now, a date or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: a duration back from now must be positive", s)
		}
		return now.Add(-d), nil
	}
	if n := strings.TrimSuffix(s, "d"); n != s {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && days >= 0 && fmt.Sprint(days) == n {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (24h, 7d) or a time (2026-11-01, 2026-11-01T08:00:00Z)", s)
}

// Run prints the audit log.
func Run(ctx context.Context, o *Options) error {
	since, err := ParseSince(o.Since, o.Now())
	if err != nil {
		return err
	}
	if o.Limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", o.Limit)
	}
	_, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := adminops.AuditFor(ctx, st, store.AuditQuery{Since: since, Action: o.Action, Limit: o.Limit}, o.User)
	if err != nil {
		return err
	}
	if o.JSON {
		return jsonout.List(o.IO.Out, Schema, "records", recs)
	}
	t := cmdutil.NewTable(o.IO.Out, "TIME", "ACTION", "WHO", "USER", "NETWORK", "FROM", "DETAIL")
	for _, r := range recs {
		user := r.Email
		if user == "" {
			user = r.Subject
		}
		// Details quote what clients sent (host names); escape anything
		// stored before registrations were checked.
		t.Row(r.Time.Local().Format(time.DateTime), r.Action, api.Printable(r.Actor), api.Printable(user), r.Network, r.Remote, api.Printable(r.Detail))
	}
	return t.Flush()
}
