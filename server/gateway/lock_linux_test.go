package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The instance lock refuses a second holder of the same state_dir, and a
// second holder in the same network namespace with another state_dir
// (here a test-only abstract name stands for the namespace's); released,
// it can be taken again. No root needed.
func TestInstanceLock(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	ns := fmt.Sprintf("@clearpath-gateway-test-%d", os.Getpid())
	l1, err := acquireLock(dir, ns)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, LockName)); strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q, want the pid", b)
	}
	if _, err := acquireLock(dir, ns+"-x"); err == nil || !strings.Contains(err.Error(), "another vpn-gateway serve is running with state_dir "+dir) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("same state_dir: %v", err)
	}
	if _, err := acquireLock(other, ns); err == nil || !strings.Contains(err.Error(), "in this network namespace") {
		t.Fatalf("same namespace, other state_dir: %v", err)
	}
	// The refused attempt on other released its flock.
	l2, err := acquireLock(other, ns+"-y")
	if err != nil {
		t.Fatalf("other state_dir and name after a refusal: %v", err)
	}
	l2.release()
	l1.release()
	l3, err := acquireLock(dir, ns)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l3.release()
}
