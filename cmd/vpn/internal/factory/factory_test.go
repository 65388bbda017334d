package factory

import (
	"io"
	"path/filepath"
	"testing"
)

// The agent of a non-default state dir listens in that dir.
func TestSocketOfStateDir(t *testing.T) {
	dir := t.TempDir()
	f := ForTest(dir, io.Discard, io.Discard)
	if f.Socket() != filepath.Join(dir, "agent.sock") || f.Control() == nil || f.Out != io.Discard {
		t.Errorf("socket %s", f.Socket())
	}
}
