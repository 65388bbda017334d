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
	"github.com/clearpath-vpn/clearpath/internal/version"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/gateway"
)

func main() {
	if err := newRoot(os.Stdout).Execute(); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "vpn-gateway:", msg)
		}
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newRoot(out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "vpn-gateway",
		Short:         "ClearPath gateway: OIDC-authenticated WireGuard with per-group isolation",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	io := cmdutil.IO{Out: out, ErrOut: os.Stderr}
	root.AddCommand(newServe(), newInit(out), newCheck(out), newHealth(out),
		reloadcmd.NewCmd(io), peerscmd.NewCmd(io), devicescmd.NewCmd(io), userscmd.NewCmd(io), auditcmd.NewCmd(io), explaincmd.NewCmd(io), doctorcmd.NewCmd(io))
	version.AddTo(root)
	clidocs.AddTo(root)
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
			var level slog.Level
			if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
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
	return &cobra.Command{
		Use:   "init",
		Short: "Print a commented example configuration",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := io.WriteString(out, config.Example)
			return err
		},
	}
}

func newCheck(out io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration file and exit",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			// A network's table holding routes of another program is refused
			// here as at start (when this host's tables can be read).
			if read, err := gateway.CheckTables(cfg); read && err != nil {
				return fmt.Errorf("%s: %w", path, err)
			} else if !read {
				fmt.Fprintf(out, "%s: routing tables not checked (%v)\n", path, err)
			}
			fmt.Fprintf(out, "%s: ok\n", path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/clearpath/gateway.yaml", "configuration file")
	return cmd
}
