package key

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/statedir"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// DeviceIDFile is the device id's file name in the state directory.
const DeviceIDFile = "device.id"

// DeviceID returns the device's id, creating it the first time. The
// gateway gives one address per (user, device, network), so the id, not the
// key, is what keeps the address when the key is rotated.
func DeviceID(dir string) (string, error) {
	path := filepath.Join(dir, DeviceIDFile)
	data, err := statedir.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(data))
		if !api.ValidDeviceID(id) {
			return "", fmt.Errorf("device id %s is damaged (%q): remove it to make a new one (the device then gets new addresses)", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read device id: %w", err)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make device id: %w", err)
	}
	id := hex.EncodeToString(b)
	if err := writeAtomic(dir, DeviceIDFile, id); err != nil {
		return "", fmt.Errorf("write device id: %w", err)
	}
	return id, nil
}

// Store replaces the device key with k (a rotation), atomically: a crash
// leaves either the old key or the new one.
func Store(dir string, k wgtypes.Key) error {
	if err := writeAtomic(dir, FileName, k.String()); err != nil {
		return fmt.Errorf("write device key: %w", err)
	}
	return nil
}

func writeAtomic(dir, name, content string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
