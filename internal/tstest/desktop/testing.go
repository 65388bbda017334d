//go:build linux

package desktop

import (
	"context"
	"os"
	"testing"
	"time"
)

// StartT starts a session for t, in a directory of t's, closed when t
// ends (with the session programs' logs in the test log on failure). When
// a program is missing the test skips, or fails in CI (CI=true), where
// `make deps` must have installed it.
func StartT(t testing.TB) *Session {
	t.Helper()
	if m := Missing(); len(m) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("desktop session needs %v in CI (make deps)", m)
		}
		t.Skipf("desktop session needs %v (make deps)", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Not t.TempDir: a unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "cp-desktop-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.Logs())
		}
		s.Close()
		os.RemoveAll(dir)
	})
	return s
}
