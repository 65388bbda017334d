// Command vpn-tray is the ClearPath tray app: an icon showing the tunnel's
// state, one-click Connect/Disconnect, login, status and doctor windows. It
// drives the same agent as the `vpn` CLI over its control socket, so both
// always agree. It is the only ClearPath binary that needs cgo (fyne).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/driver/desktop"
	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/version"
	"github.com/clearpath-vpn/clearpath/tray"
	"github.com/clearpath-vpn/clearpath/tray/ui"
)

// AppID names the app for fyne (preferences) and the desktop.
const AppID = "dev.clearpath.tray"

// Options are the tray's flags.
type Options struct {
	StateDir string
	// UpOptions are the flags of `vpn up` the tray shares (--server,
	// --token-file, --all-traffic, --mtu, ...).
	local.UpOptions
	VPN           string
	Elevate       string
	Poll          time.Duration
	ExpiryWarning time.Duration
	NoWatch       bool
	LogLevel      string
}

func main() {
	os.Exit(cmdutil.Execute(newRootCmd(), "vpn-tray", os.Stderr, nil))
}

func newRootCmd() *cobra.Command {
	cmd, _ := newRoot()
	return cmd
}

// newRoot returns the command and the options its flags fill.
func newRoot() (*cobra.Command, *Options) {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "vpn-tray",
		Short: "ClearPath in the system tray: connect in one click, see the tunnel's state",
		Long: `vpn-tray puts ClearPath in the desktop's system tray (StatusNotifierItem).
The icon shows the state: disconnected (grey bar), connecting (amber dots),
connected (green check), needs login (blue padlock), error (red !).
The menu connects and disconnects in one click, shows the address and server,
logs in and out (the browser opens, as with 'vpn login'), picks the network
when you belong to several, and opens the live status window and doctor.

It talks to the same agent as the 'vpn' CLI (control socket in --state-dir);
when none runs and vpn-tray runs as root it starts 'vpn agent' itself, else
the agent must run as a service. The token comes from the login cache of
'vpn login' (refreshed silently), or from --token-file for automation.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o)
		},
	}
	f := cmd.PersistentFlags()
	local.AddStateDirFlag(f, &o.StateDir)
	local.AddUpFlags(f, &o.UpOptions)
	f.StringVar(&o.VPN, "vpn", "", "path of the vpn binary, for doctor and for starting the agent (default: next to vpn-tray, else on PATH)")
	f.StringVar(&o.Elevate, "elevate", "pkexec", "command run before 'vpn doctor --fix' when vpn-tray is not root (empty: none)")
	f.DurationVar(&o.Poll, "poll", time.Second, "how often the agent's status is read")
	f.DurationVar(&o.ExpiryWarning, "expiry-warning", time.Hour, "notify this long before the connection expires")
	f.BoolVar(&o.NoWatch, "no-watch", false, "do not run doctor after network changes")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level on stderr: debug, info, warn, error")
	cmd.AddCommand(newAutostartCmd(cmd))
	version.AddTo(cmd)
	return cmd, o
}

// wiring builds the controller's settings and effects from the flags.
func wiring(o *Options, log *slog.Logger, notify func(tray.Notification)) (tray.Settings, tray.Deps, error) {
	set := tray.Settings{UpOptions: o.UpOptions, Poll: o.Poll, ExpiryWarning: o.ExpiryWarning}
	if _, err := set.Request(); err != nil {
		return set, tray.Deps{}, err // a bad --mtu, before the tray shows
	}
	var tokens tray.Tokens
	if o.TokenFile != "" {
		tokens = tray.FileTokens{Path: o.TokenFile}
	} else {
		cache, err := auth.DefaultCache()
		if err != nil {
			return set, tray.Deps{}, err
		}
		if set.Server == "" {
			set.Server = cache.DefaultServer()
		}
		tokens = tray.AuthTokens{Cache: cache, Out: logWriter{log}}
	}
	vpnPath := o.VPN
	if vpnPath == "" {
		var err error
		if vpnPath, err = tray.FindVPN(); err != nil {
			return set, tray.Deps{}, err
		}
	}
	cli := tray.CLI{Path: vpnPath, StateDir: o.StateDir}
	if os.Geteuid() != 0 && o.Elevate != "" {
		cli.Elevate = strings.Fields(o.Elevate)
	}
	agent := local.New(o.StateDir)
	agent.VPN = vpnPath
	d := tray.Deps{Agent: agent, Tokens: tokens, Doctor: cli, Notify: notify}
	if os.Geteuid() == 0 {
		d.StartAgent = agent.Start
	}
	return set, d, nil
}

func run(ctx context.Context, o *Options) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	a := app.NewWithID(AppID)
	a.SetIcon(ui.AppIcon())
	a.Settings().SetTheme(ui.Theme())
	desk, ok := a.(desktop.App)
	if !ok {
		return errors.New("this platform has no system tray support in fyne")
	}
	notify := func(n tray.Notification) {
		log.Info("notification", "kind", n.Kind, "title", n.Title, "body", n.Body)
		a.SendNotification(fyne.NewNotification(tray.EscapeMarkup(n.Title), tray.EscapeMarkup(n.Body)))
	}
	set, deps, err := wiring(o, log, notify)
	if err != nil {
		return err
	}
	ctl := tray.NewController(set, deps)
	t := ui.NewTray(ctx, a, desk, ctl, cancel, log)

	var changes <-chan struct{}
	if !o.NoWatch {
		if changes, err = tray.WatchNetwork(ctx); err != nil {
			log.Warn("cannot watch network changes; doctor runs only when asked", "err", err)
		}
	}
	// fyne starts the StatusNotifierItem only if the tray menu is set
	// before Run: a menu set later (in OnStarted) never registers.
	t.Start()
	a.Lifecycle().SetOnStarted(func() {
		go ctl.Run(ctx, changes)
		log.Info("tray ready", "server", set.Server, "state_dir", o.StateDir, "pid", os.Getpid())
	})
	go func() {
		<-ctx.Done()
		fyne.Do(a.Quit)
	}()
	a.Run()
	return nil
}

// logWriter turns what the login prints (URLs, codes) into log lines.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			w.log.Info("login", "msg", l)
		}
	}
	return len(p), nil
}

var _ io.Writer = logWriter{}
