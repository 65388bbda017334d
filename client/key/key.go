// Package key keeps the device's WireGuard private key. It is made on the
// device and never leaves it: only the public half goes to the gateway.
package key

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/statedir"
)

// FileName is the key file's name in the state directory.
const FileName = "device.key"

// LoadOrCreate returns the key stored in dir, creating it (mode 0600) the
// first time. A damaged key file is an error, never silently replaced: the
// gateway knows this device by its public key.
func LoadOrCreate(dir string) (wgtypes.Key, error) {
	path := filepath.Join(dir, FileName)
	data, err := statedir.ReadFile(path)
	if err == nil {
		k, err := wgtypes.ParseKey(strings.TrimSpace(string(data)))
		if err != nil {
			return wgtypes.Key{}, fmt.Errorf("device key %s is damaged (%v): remove it to make a new one", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return wgtypes.Key{}, fmt.Errorf("device key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return wgtypes.Key{}, fmt.Errorf("read device key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return wgtypes.Key{}, fmt.Errorf("create state dir: %w", err)
	}
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("generate device key: %w", err)
	}
	if err := writeAtomic(dir, FileName, k.String()); err != nil {
		return wgtypes.Key{}, fmt.Errorf("write device key: %w", err)
	}
	return k, nil
}
