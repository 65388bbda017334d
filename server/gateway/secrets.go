package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// checkSecretFiles refuses to start when the state directory or the SQLite
// store (every network's private key, every preshared key) or its -wal and
// -shm files can be read or written by group or others. The error names
// the file and the fix.
func checkSecretFiles(cfg *config.Config) error {
	var errs []error
	check := func(what, path string, fix string) {
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", what, path, err))
			return
		}
		if mode := fi.Mode().Perm(); mode&0o066 != 0 {
			errs = append(errs, fmt.Errorf("%s %s is open to group or others (mode %04o) and holds the network keys: run `%s %s` before starting the gateway", what, path, mode, fix, path))
		}
	}
	check("state_dir", cfg.StateDir, "chmod 700")
	if !store.IsPostgres(cfg.Store) {
		// The store's own directory may be shared (0755 is fine): the
		// files themselves are what must be private.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			check("store", cfg.Store+suffix, "chmod 600")
		}
	}
	return errors.Join(errs...)
}

// openStore opens the store, naming it without its password on failure.
func openStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", config.RedactDSN(cfg.Store), err)
	}
	return st, nil
}

// deviceLimitMessage is the 409 device_limit: it names the user by e-mail
// and tells what an administrator runs to free a device.
func deviceLimitMessage(id *auth.Identity, network string) string {
	who := display(id)
	return fmt.Sprintf("user %s already has %d live devices in network %s, the most allowed (revoked and expired ones do not count); "+
		"an administrator frees one with `vpn-gateway devices free --user %s --network %s --device ID --revoke` (device ids: `vpn-gateway devices list --user %s --network %s`)",
		who, maxDevicesPerUser, network, shellWord(who), network, shellWord(who), network)
}

// shellWord quotes s for a shell command line when it needs it.
func shellWord(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@._+-", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
