// Package auditcmd implements `vpn-gateway audit`: the audit log of the
// store named by --config, filtered by time, user and action.
package auditcmd

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Options are the flags of `vpn-gateway audit`.
type Options struct {
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

// NewCmd returns `vpn-gateway audit`.
func NewCmd(io cmdutil.IO) *cobra.Command {
	o := &Options{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: logins, registrations, refreshes, expiries, warnings, revocations, reloads",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return Run(cmd.Context(), io, o) },
	}
	cmdutil.ConfigFlag(cmd, &o.ConfigPath)
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
func Run(ctx context.Context, io cmdutil.IO, o *Options) error {
	since, err := ParseSince(o.Since, o.Now())
	if err != nil {
		return err
	}
	_, st, err := cmdutil.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := query(ctx, st, store.AuditQuery{Since: since, Action: o.Action, Limit: o.Limit}, o.User)
	if err != nil {
		return err
	}
	if o.JSON {
		return jsonout.List(io.Out, Schema, "records", recs)
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tWHO\tUSER\tNETWORK\tFROM\tDETAIL")
	for _, r := range recs {
		user := r.Email
		if user == "" {
			user = r.Subject
		}
		// Details quote what clients sent (host names); escape anything
		// stored before registrations were checked.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format(time.DateTime), r.Action, api.Printable(r.Actor), dash(api.Printable(user)), dash(r.Network), dash(r.Remote), api.Printable(r.Detail))
	}
	return tw.Flush()
}

// query applies --user: every name the user goes by (subject and e-mail).
func query(ctx context.Context, st *store.Store, q store.AuditQuery, user string) ([]store.AuditRecord, error) {
	if user == "" {
		return st.QueryAudit(ctx, q)
	}
	names := []string{user}
	if sub, email, err := cmdutil.ResolveUser(ctx, st, user); err == nil {
		names = []string{sub}
		if email != "" {
			names = append(names, email)
		}
	}
	seen := map[int64]bool{}
	var out []store.AuditRecord
	for _, n := range names {
		q.User = n
		recs, err := st.QueryAudit(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
	}
	// Both lists are oldest first; merge by id.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
