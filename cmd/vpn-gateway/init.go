package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/clearpath-vpn/clearpath/server/config"
)

type initOptions struct {
	path  string
	force bool
	// stateDir overrides the example's state_dir (tests).
	stateDir string
}

// runInit prints the example, or writes it to o.path with the directories
// the gateway needs: `init > /etc/clearpath/gateway.yaml` failed on a
// host without /etc/clearpath.
func runInit(out io.Writer, o initOptions) error {
	if o.path == "" {
		_, err := io.WriteString(out, config.Example)
		return err
	}
	if _, err := os.Stat(o.path); err == nil && !o.force {
		return fmt.Errorf("%s exists: kept (edit it, or --force to replace it with the example)", o.path)
	}
	dir := filepath.Dir(o.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w (run as root, or choose a --config path you may write)", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".gateway-*.yaml")
	if err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, config.Example); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.path); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	fmt.Fprintf(out, "wrote %s (0600): edit endpoint, oidc and networks, then `vpn-gateway check -c %s`\n", o.path, o.path)

	state := o.stateDir
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
