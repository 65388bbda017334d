package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Dynamic shell completion, added to the whole command tree at once (so
// the subcommands' files stay as they are): --network from the
// configuration file the command would read, --user and USER arguments
// from the store (e-mails of devices; `users enable` offers the disabled
// ones), --device from the store, --action from the audit actions.
// A completion that cannot read the file or store offers nothing.

var auditActions = []string{"login", "register", "refresh", "delete", "expire", "warn", "revoke", "disable", "enable", "refuse", "reload", "start", "stop"}

func addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		flagFunc := func(name string, fn func(*cobra.Command) []string) {
			if c.Flags().Lookup(name) == nil {
				return
			}
			c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
				return withPrefix(fn(cmd), prefix), cobra.ShellCompDirectiveNoFileComp
			})
		}
		flagFunc("network", networkNames)
		flagFunc("user", func(cmd *cobra.Command) []string { return userNames(cmd, false) })
		flagFunc("device", deviceIDs)
		if c.Name() == "audit" {
			flagFunc("action", func(*cobra.Command) []string { return auditActions })
		}
		// Commands whose first argument is a user.
		if first := strings.Fields(c.Use); len(first) > 1 && strings.Trim(first[1], "[]") == "USER" && c.ValidArgsFunction == nil {
			disabled := c.Name() == "enable"
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return withPrefix(userNames(cmd, disabled), prefix), cobra.ShellCompDirectiveNoFileComp
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func withPrefix(all []string, prefix string) []string {
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

func configPath(cmd *cobra.Command) string {
	if f := cmd.Flag("config"); f != nil {
		return f.Value.String()
	}
	return cmdutil.DefaultConfig
}

func networkNames(cmd *cobra.Command) []string {
	cfg, err := config.Load(configPath(cmd))
	if err != nil {
		return nil
	}
	var names []string
	for _, n := range cfg.Networks {
		names = append(names, n.Name)
	}
	return names
}

// withStore opens the command's store for a moment (2 s at most).
func withStore(cmd *cobra.Command, fn func(context.Context, *store.Store)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cfg, err := config.Load(configPath(cmd))
	if err != nil {
		return
	}
	if !strings.Contains(cfg.Store, "://") {
		if _, err := os.Stat(cfg.Store); err != nil {
			return // completing must not create a store
		}
	}
	_, st, err := adminops.Open(ctx, configPath(cmd))
	if err != nil {
		return
	}
	defer st.Close()
	fn(ctx, st)
}

// userNames are the e-mails (else subjects) of the store's devices, or of
// the disabled users.
func userNames(cmd *cobra.Command, disabled bool) []string {
	var names []string
	withStore(cmd, func(ctx context.Context, st *store.Store) {
		if disabled {
			us, _ := st.DisabledUsers(ctx)
			for _, u := range us {
				names = append(names, u.Ident)
			}
			return
		}
		ds, _ := st.Devices(ctx, "")
		for _, d := range ds {
			if d.Email != "" {
				names = append(names, d.Email)
			} else {
				names = append(names, d.Subject)
			}
		}
	})
	slices.Sort(names)
	return slices.Compact(names)
}

func deviceIDs(cmd *cobra.Command) []string {
	user := ""
	if f := cmd.Flags().Lookup("user"); f != nil {
		user = f.Value.String()
	}
	var ids []string
	withStore(cmd, func(ctx context.Context, st *store.Store) {
		ds, _ := st.Devices(ctx, "")
		for _, d := range ds {
			if user == "" || d.Email == user || d.Subject == user {
				ids = append(ids, d.Device)
			}
		}
	})
	slices.Sort(ids)
	return slices.Compact(ids)
}
