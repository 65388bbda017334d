// Package initcmd implements `vpn-gateway init`: print the commented
// example configuration, or write it with --config and make the
// directories the gateway needs.
package initcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// Options are the inputs of `vpn-gateway init`.
type Options struct {
	IO cmdutil.IOStreams
	// Path is where to write the example: --config when given, else ""
	// (print it).
	Path  string
	Force bool
	// StateDir overrides the example's state_dir (tests).
	StateDir string
}

// NewCmd returns `vpn-gateway init`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Print a commented example configuration, or write it with --config",
		Long: `Print a commented example configuration. With --config PATH, write it there
instead (0600: it may come to hold secrets), creating PATH's directory and the
example's state directory (/var/lib/clearpath-gateway, 0700) when missing;
an existing file is kept unless --force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO = f.IOStreams
			// The one --config has a default for the commands that read
			// the file; init writes only where it is told to.
			o.Path = ""
			if fl := cmd.Flag("config"); fl != nil && fl.Changed {
				o.Path = f.ConfigPath
			}
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "with --config: replace an existing file")
	return cmd
}

// Run prints the example, or writes it to o.Path with the directories
// the gateway needs: `init > /etc/clearpath/gateway.yaml` failed on a
// host without /etc/clearpath.
func Run(_ context.Context, o *Options) error {
	out := o.IO.Out
	if o.Path == "" {
		_, err := io.WriteString(out, config.Example)
		return err
	}
	if _, err := os.Stat(o.Path); err == nil && !o.Force {
		return fmt.Errorf("%s exists: kept (edit it, or --force to replace it with the example)", o.Path)
	}
	dir := filepath.Dir(o.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w (run as root, or choose a --config path you may write)", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".gateway-*.yaml")
	if err != nil {
		return fmt.Errorf("write %s: %w", o.Path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, config.Example); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", o.Path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.Path); err != nil {
		return fmt.Errorf("write %s: %w", o.Path, err)
	}
	fmt.Fprintf(out, "wrote %s (0600): edit endpoint, oidc and networks, then `vpn-gateway check -c %s`\n", o.Path, o.Path)

	state := o.StateDir
	if state == "" {
		state = config.DefaultStateDir
	}
	switch fi, err := os.Stat(state); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(state, 0o700); err != nil {
			return fmt.Errorf("create the state directory %s: %w", state, err)
		}
		if err := os.Chmod(state, 0o700); err != nil { // MkdirAll's mode is under the umask
			return err
		}
		fmt.Fprintf(out, "created the state directory %s (0700)\n", state)
	case err != nil:
		return fmt.Errorf("state directory %s: %w", state, err)
	case !fi.IsDir():
		return fmt.Errorf("state directory %s is not a directory", state)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("state directory %s is mode %04o: the gateway refuses a directory others may open; fix: chmod 700 %s", state, fi.Mode().Perm(), state)
	}
	return nil
}
