package gateway

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Forwarding already on is left alone (no write, nothing to restore): in a
// container /proc/sys is read-only and compose turns forwarding on itself.
// Off is switched on and restored.
func TestEnableForwardingLeavesItOnAlone(t *testing.T) {
	dir := t.TempDir()
	on, off := filepath.Join(dir, "on"), filepath.Join(dir, "off")
	os.WriteFile(on, []byte("1\n"), 0o644)
	os.WriteFile(off, []byte("0\n"), 0o644)
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(on, past, past)
	old := ForwardingSysctls
	t.Cleanup(func() { ForwardingSysctls = old })
	ForwardingSysctls = []string{on, off}

	restore, err := enableForwarding()
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(on); !fi.ModTime().Equal(past) {
		t.Errorf("%s (already 1) was written: mtime %v, want %v", on, fi.ModTime(), past)
	}
	if b, _ := os.ReadFile(off); string(b) != "1" {
		t.Errorf("off switch now %q, want 1", b)
	}
	restore()
	if b, _ := os.ReadFile(off); string(b) != "0\n" {
		t.Errorf("restore left %q, want the old 0", b)
	}
	if fi, _ := os.Stat(on); !fi.ModTime().Equal(past) {
		t.Errorf("restore wrote %s", on)
	}
}
