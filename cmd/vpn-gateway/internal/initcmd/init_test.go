package initcmd

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// init --config writes the example where no directory existed yet, 0600,
// makes the state directory 0700 (under any umask), keeps an existing
// file unless --force, and names the chmod for a loose state directory.
func TestInitWritesConfigAndStateDir(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	root := t.TempDir()
	var out bytes.Buffer
	o := &Options{IO: cmdutil.Test(&out, &out), Path: filepath.Join(root, "etc", "clearpath", "gateway.yaml"), StateDir: filepath.Join(root, "var", "lib", "clearpath-gateway")}
	if err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(o.Path)
	if err != nil || string(b) != config.Example {
		t.Fatalf("written file: %v", err)
	}
	if fi, _ := os.Stat(o.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %04o, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(o.StateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v, want 0700", err, fi)
	}
	if !strings.Contains(out.String(), "created the state directory") {
		t.Errorf("output: %s", out.String())
	}
	os.WriteFile(o.Path, []byte("edited"), 0o600)
	if err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "exists: kept") {
		t.Errorf("second init: %v", err)
	}
	if b, _ := os.ReadFile(o.Path); string(b) != "edited" {
		t.Error("init replaced an existing file without --force")
	}
	o.Force = true
	if err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	os.Chmod(o.StateDir, 0o755)
	if err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "fix: chmod 700 "+o.StateDir) {
		t.Errorf("loose state dir: %v", err)
	}
	// Without --config: the example on stdout, as make dist uses it.
	out.Reset()
	if err := Run(context.Background(), &Options{IO: cmdutil.Test(&out, &out)}); err != nil || out.String() != config.Example {
		t.Errorf("init to stdout: %v", err)
	}
}

// --config reaches the hook only when given (the root's default is where
// the other commands read, not where init writes); --force too.
func TestInitOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"init"})
	if err := root.Execute(); err != nil || got.Path != "" || got.Force {
		t.Fatalf("init: %v %+v", err, got)
	}
	root.SetArgs([]string{"init", "--config", "/tmp/x/gw.yaml", "--force"})
	if err := root.Execute(); err != nil || got.Path != "/tmp/x/gw.yaml" || !got.Force {
		t.Fatalf("init --config --force: %v %+v", err, got)
	}
}
