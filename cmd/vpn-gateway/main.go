// Command vpn-gateway is the ClearPath gateway: it verifies OIDC tokens,
// gives each user a stable tunnel address and runs one WireGuard interface
// per group with its own routing table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/auditcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/devicescmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/doctorcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/explaincmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/peerscmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/reloadcmd"
	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/userscmd"
	"github.com/clearpath-vpn/clearpath/internal/clidocs"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
	"github.com/clearpath-vpn/clearpath/internal/memlimit"
	"github.com/clearpath-vpn/clearpath/internal/usererr"
	"github.com/clearpath-vpn/clearpath/internal/version"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/gateway"
)

func main() {
	if err := newRoot(os.Stdout).Execute(); err != nil {
		usererr.Print(os.Stderr, "vpn-gateway", err, usererr.Debug())
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newRoot(out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "vpn-gateway",
		Short: "ClearPath gateway: OIDC-authenticated WireGuard with per-group isolation",
		Long: "ClearPath gateway: OIDC-authenticated WireGuard with per-group isolation.\n\n" + envvar.Help([]envvar.Var{
			{Name: "WG_INFLIGHT", Help: "packets in flight per WireGuard direction (default 256; 0 unbounded)"},
			{Name: "DEBUG", Help: "1: as --debug, the full error chain and debug logs"},
		}),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	debug := usererr.Debug()
	root.PersistentFlags().BoolVar(&debug, "debug", debug, "on failure print the whole error chain; serve logs at debug level (env CLEARPATH_DEBUG=1)")
	cobra.OnInitialize(func() {
		if debug {
			os.Setenv("CLEARPATH_DEBUG", "1")
		}
	})
	io := cmdutil.IO{Out: out, ErrOut: os.Stderr}
	root.AddCommand(newServe(), newInit(out), newCheck(out), newHealth(out),
		reloadcmd.NewCmd(io), peerscmd.NewCmd(io), devicescmd.NewCmd(io), userscmd.NewCmd(io), auditcmd.NewCmd(io), explaincmd.NewCmd(io), doctorcmd.NewCmd(io))
	version.AddTo(root)
	clidocs.AddTo(root)
	addCompletions(root)
	return root
}

type serveOptions struct {
	configPath string
	logLevel   string
}

func newServe() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			if err := needNetAdmin(); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			if usererr.Debug() {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
			return gateway.Serve(ctx, gateway.Options{Config: cfg, ConfigPath: o.configPath, Log: log, Reload: reload})
		},
	}
	cmd.Flags().StringVarP(&o.configPath, "config", "c", "/etc/clearpath/gateway.yaml", "configuration file")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func newInit(out io.Writer) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Print a commented example configuration, or write it with --config",
		Long: `Print a commented example configuration. With --config PATH, write it there
instead (0600: it may come to hold secrets), creating PATH's directory and the
example's state directory (/var/lib/clearpath-gateway, 0700) when missing;
an existing file is kept unless --force.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runInit(out, o) },
	}
	cmd.Flags().StringVarP(&o.path, "config", "c", "", "write the example to this file (e.g. /etc/clearpath/gateway.yaml) instead of printing it")
	cmd.Flags().BoolVar(&o.force, "force", false, "with --config: replace an existing file")
	return cmd
}

func newCheck(out io.Writer) *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration file and that its ports are free, then exit",
		Long: `Validate a configuration file: every mistake is listed, each naming its field
and line. Then, unless --offline, the ports it names are bound for a moment
(API and metrics over TCP, each network's WireGuard port over UDP): a port
another program holds is an error; one the running gateway holds is a note.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd.Context(), out, o) },
	}
	cmd.Flags().StringVarP(&o.path, "config", "c", "/etc/clearpath/gateway.yaml", "configuration file")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the result as JSON (schema "+checkSchema+")")
	cmd.Flags().BoolVar(&o.offline, "offline", false, "check the file only, not this host's ports (e.g. on a build machine)")
	return cmd
}
