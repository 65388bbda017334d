package explaincmd

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

// USER and HOST[:PORT] and the flags reach the run hook; one argument is
// refused before it.
func TestExplainOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"explain", "alice", "10.10.0.10:5432", "--network", "eng", "--json"})
	if err := root.Execute(); err != nil || got.User != "alice" || got.Target != "10.10.0.10:5432" || got.Network != "eng" || !got.JSON || got.ConfigPath != cmdutil.DefaultConfig {
		t.Fatalf("explain: %v %+v", err, got)
	}
	got = nil
	root.SetArgs([]string{"explain", "alice"})
	if err := root.Execute(); err == nil || got != nil {
		t.Errorf("explain with one argument: %v", err)
	}
}

// A user the store has never seen is named in the error unless --network
// says which network to explain for; a bad target is refused first.
func TestExplainUnknownUser(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gw.yaml")
	doc := strings.Replace(config.Example, "store: /var/lib/clearpath-gateway/gateway.db", "store: "+filepath.Join(dir, "gw.db"), 1)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &Options{IO: cmdutil.Test(io.Discard, io.Discard), ConfigPath: cfg, User: "mallory", Target: "10.10.0.10"}
	if err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), `no user "mallory"`) {
		t.Errorf("unknown user: %v", err)
	}
	o.Target = "10.10.0.10:http:x"
	if err := Run(context.Background(), o); err == nil || cmdutil.ExitCode(err) != 1 {
		t.Errorf("bad target: %v", err)
	}
}
