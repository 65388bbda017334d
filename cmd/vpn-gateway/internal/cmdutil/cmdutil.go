// Package cmdutil holds what the vpn-gateway admin commands share: the
// --config flag, opening the store it names, who is running the command
// (for the audit log) and formatting helpers.
package cmdutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/internal/units"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// DefaultConfig is the configuration file used without --config.
const DefaultConfig = "/etc/clearpath/gateway.yaml"

// IO are a command's output streams.
type IO struct {
	Out, ErrOut io.Writer
}

// ConfigFlag adds --config / -c to cmd.
func ConfigFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVarP(path, "config", "c", DefaultConfig, "gateway configuration file (names the store)")
}

// Open loads the configuration at path and opens the store it names.
func Open(ctx context.Context, path string) (*config.Config, *store.Store, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("store %s: %w", config.RedactDSN(cfg.Store), err)
	}
	return cfg, st, nil
}

// Actor names the person running an admin command: the sudo caller if any.
func Actor() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// Remote says where an admin command ran, for the audit log.
func Remote() string {
	h, _ := os.Hostname()
	return "cli@" + h
}

// ResolveUser finds the user an administrator named (adminops.ResolveUser).
func ResolveUser(ctx context.Context, st *store.Store, name string) (subject, email string, err error) {
	return adminops.ResolveUser(ctx, st, name)
}

// Ago formats how long ago t was ("3m12s ago", "never"; units.Duration).
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return units.Duration(now.Sub(t)) + " ago"
}

// In formats how long until t ("in 29d23h", "expired 5s ago").
func In(t, now time.Time) string {
	if !t.After(now) {
		return "expired " + units.Duration(now.Sub(t)) + " ago"
	}
	return "in " + units.Duration(t.Sub(now))
}

// ExitError ends a command with Code and no message: the command has
// already printed its answer ("findings", "not reachable") and scripts read
// the status. main exits with ExitCode().
type ExitError struct{ Code int }

func (e ExitError) Error() string { return "" }

// ExitCode is the process exit status.
func (e ExitError) ExitCode() int { return e.Code }
