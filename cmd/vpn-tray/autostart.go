package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/clearpath-vpn/clearpath/tray/autostart"
)

// newAutostartCmd returns `vpn-tray autostart enable|disable|show`. The
// entry runs this binary with the tray flags given on this command line
// (`vpn-tray --server URL autostart enable`).
func newAutostartCmd(root *cobra.Command) *cobra.Command {
	var launchd bool
	argv := func() ([]string, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return nil, err
		}
		return append([]string{exe}, changedFlags(root.PersistentFlags())...), nil
	}
	cmd := &cobra.Command{
		Use:   "autostart",
		Short: "Start the tray with the desktop session (XDG autostart; launchd on macOS)",
		Long: `'enable' writes $XDG_CONFIG_HOME/autostart/clearpath-tray.desktop (default
~/.config/autostart), running this binary with the tray flags given before
'autostart'; 'disable' removes it; 'show' prints it. On macOS, or with
--launchd, 'show' prints a launch agent to save as
~/Library/LaunchAgents/dev.clearpath.tray.plist and load with
'launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/dev.clearpath.tray.plist'.`,
	}
	cmd.PersistentFlags().BoolVar(&launchd, "launchd", runtime.GOOS == "darwin", "use a macOS launch agent plist instead of an XDG entry")
	cmd.AddCommand(&cobra.Command{
		Use: "show", Short: "Print the autostart entry", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := argv()
			if err != nil {
				return err
			}
			var s string
			if launchd {
				s, err = autostart.LaunchdPlist(a)
			} else {
				s, err = autostart.DesktopEntry(a)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), s)
			return err
		},
	}, &cobra.Command{
		Use: "enable", Short: "Install the autostart entry", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if launchd {
				return fmt.Errorf("on macOS save the output of 'vpn-tray autostart show' as ~/Library/LaunchAgents/%s.plist", autostart.Label)
			}
			a, err := argv()
			if err != nil {
				return err
			}
			dir, err := autostart.XDGDir()
			if err != nil {
				return err
			}
			p, err := autostart.InstallXDG(dir, a)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "vpn-tray starts with your next session (%s)\n", p)
			return nil
		},
	}, &cobra.Command{
		Use: "disable", Short: "Remove the autostart entry", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := autostart.XDGDir()
			if err != nil {
				return err
			}
			if err := autostart.RemoveXDG(dir); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "vpn-tray no longer starts with your session")
			return nil
		},
	})
	return cmd
}

// changedFlags are the flags set on the command line, as arguments.
// VisitAll with Changed, not Visit: cobra parses a subcommand's line into
// the subcommand's own flag set, which shares the Flag values but not the
// "set" bookkeeping Visit reads.
func changedFlags(fs *pflag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			out = append(out, "--"+f.Name+"="+f.Value.String())
		}
	})
	return out
}
