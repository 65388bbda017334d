package key

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	k1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	k2, err := LoadOrCreate(dir)
	if err != nil || k1 != k2 {
		t.Fatal("the device key must be stable")
	}
	os.Chmod(filepath.Join(dir, FileName), 0o644)
	if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable key: %v", err)
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte("garbage\n"), 0o600)
	if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged key must be an error, not replaced: %v", err)
	}
}

func TestDeviceIDIsStableAndKeyRotationKeepsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id, err := DeviceID(dir)
	if err != nil || len(id) != 32 {
		t.Fatalf("device id %q: %v", id, err)
	}
	k1, _ := LoadOrCreate(dir)
	k2, _ := wgtypes.GeneratePrivateKey()
	if err := Store(dir, k2); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadOrCreate(dir); err != nil || got != k2 || got == k1 {
		t.Fatalf("after rotation the key is %v (%v), want the new one", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, FileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("rotated key mode %v", fi.Mode().Perm())
	}
	if again, err := DeviceID(dir); err != nil || again != id {
		t.Fatalf("device id after rotation %q (%v), want %q", again, err, id)
	}
	other, _ := DeviceID(t.TempDir())
	if other == id {
		t.Fatal("two state dirs got one device id")
	}
	os.WriteFile(filepath.Join(dir, DeviceIDFile), []byte("../etc\n"), 0o600)
	if _, err := DeviceID(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged id: %v", err)
	}
}
