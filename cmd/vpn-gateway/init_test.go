package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/config"
)

// init --config writes the example where no directory existed yet, 0600,
// makes the state directory 0700 (under any umask), keeps an existing
// file unless --force, and names the chmod for a loose state directory.
func TestInitWritesConfigAndStateDir(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	root := t.TempDir()
	o := initOptions{path: filepath.Join(root, "etc", "clearpath", "gateway.yaml"), stateDir: filepath.Join(root, "var", "lib", "clearpath-gateway")}
	var out bytes.Buffer
	if err := runInit(&out, o); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(o.path)
	if err != nil || string(b) != config.Example {
		t.Fatalf("written file: %v", err)
	}
	if fi, _ := os.Stat(o.path); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %04o, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(o.stateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v, want 0700", err, fi)
	}
	if !strings.Contains(out.String(), "created the state directory") {
		t.Errorf("output: %s", out.String())
	}
	os.WriteFile(o.path, []byte("edited"), 0o600)
	if err := runInit(&out, o); err == nil || !strings.Contains(err.Error(), "exists: kept") {
		t.Errorf("second init: %v", err)
	}
	if b, _ := os.ReadFile(o.path); string(b) != "edited" {
		t.Error("init replaced an existing file without --force")
	}
	o.force = true
	if err := runInit(&out, o); err != nil {
		t.Fatal(err)
	}
	os.Chmod(o.stateDir, 0o755)
	if err := runInit(&out, o); err == nil || !strings.Contains(err.Error(), "fix: chmod 700 "+o.stateDir) {
		t.Errorf("loose state dir: %v", err)
	}
	// Without --config: the example on stdout, as make dist uses it.
	out.Reset()
	if err := runInit(&out, initOptions{}); err != nil || out.String() != config.Example {
		t.Errorf("init to stdout: %v", err)
	}
}
