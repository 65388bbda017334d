package servecmd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// The flags reach the run hook: --config from the root, --log-level.
func TestServeOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"serve", "-c", "/tmp/gw.yaml", "--log-level", "warn"})
	if err := root.Execute(); err != nil || got.ConfigPath != "/tmp/gw.yaml" || got.LogLevel != "warn" {
		t.Fatalf("serve: %v %+v", err, got)
	}
	f = &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root = cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"serve"})
	if err := root.Execute(); err != nil || got.ConfigPath != cmdutil.DefaultConfig || got.LogLevel != "info" {
		t.Fatalf("serve defaults: %v %+v", err, got)
	}
}

// A bad file and a bad --log-level stop serve before it touches anything:
// the state directory the file names is not created.
func TestServeRefusesBadInputFirst(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	p := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(config.Example, "/var/lib/clearpath-gateway", state)), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), &Options{IO: cmdutil.Test(io.Discard, io.Discard), ConfigPath: p, LogLevel: "loud"})
	if err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("--log-level loud: %v", err)
	}
	err = Run(context.Background(), &Options{IO: cmdutil.Test(io.Discard, io.Discard), ConfigPath: filepath.Join(dir, "missing.yaml"), LogLevel: "info"})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("serve created %s before refusing", state)
	}
}
