// Package servecmd implements `vpn-gateway serve`: run the gateway of the
// configuration file until SIGINT or SIGTERM; SIGHUP reloads the file.
package servecmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/memlimit"
	"github.com/clearpath-vpn/clearpath/internal/usererr"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/gateway"
)

// Options are the inputs of `vpn-gateway serve`.
type Options struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	LogLevel   string
}

// NewCmd returns `vpn-gateway serve`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	cmd.Flags().StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// Run serves until ctx ends or SIGINT/SIGTERM; SIGHUP reloads the file.
// It refuses, before touching anything, a bad file, a bad --log-level and
// a process without CAP_NET_ADMIN.
func Run(ctx context.Context, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if err := needNetAdmin(); err != nil {
		return err
	}
	if usererr.Debug() {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(o.IO.ErrOut, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if limit := memlimit.Follow(ctx, log); limit > 0 {
		log.Info("memory limit", "mib", limit>>20, "above_live", "1/4", "override", memlimit.Env+" or GOMEMLIMIT")
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// SIGUSR1 reopens the flow log (logrotate) and must never end
	// the gateway, flow log or not: caught here, acted on there.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
		}
	}()
	reload := make(chan struct{})
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return gateway.Serve(ctx, gateway.Options{Config: cfg, ConfigPath: o.ConfigPath, Log: log, Reload: reload})
}
