package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/clearpath-vpn/clearpath/client/local"
)

// vpn-tray takes `vpn up`'s flags from client/local, so the two cannot
// drift: every up flag is there with the same help and default, and a bad
// value is refused before the tray shows (as `vpn up` refuses it).
func TestTrayHasTheUpFlags(t *testing.T) {
	want := pflag.NewFlagSet("up", pflag.ContinueOnError)
	local.AddUpFlags(want, &local.UpOptions{})
	root := newRootCmd()
	n := 0
	want.VisitAll(func(w *pflag.Flag) {
		n++
		got := root.PersistentFlags().Lookup(w.Name)
		if got == nil || got.Usage != w.Usage || got.DefValue != w.DefValue {
			t.Errorf("--%s: vpn-tray has %+v, vpn up %+v", w.Name, got, w)
		}
	})
	if n < 10 {
		t.Fatalf("only %d up flags: AddUpFlags lost some", n)
	}
	if sd := root.PersistentFlags().Lookup("state-dir"); sd == nil || sd.DefValue != local.StateDir() {
		t.Errorf("--state-dir: %+v", sd)
	}

	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("t\n"), 0o600)
	parse := func(args ...string) *Options {
		t.Helper()
		root, o := newRoot()
		if err := root.PersistentFlags().Parse(args); err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := parse("--token-file", tok, "--vpn", "/bin/true", "--server", "https://gw.example", "--mtu", "auto", "--fail-closed", "--all-traffic")
	set, _, err := wiring(o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if req, err := set.Request(); err != nil || !req.AutoMTU || !req.FailClosed || !req.AllTraffic || req.Server != "https://gw.example" {
		t.Fatalf("tray settings: %+v %v", req, err)
	}
	o = parse("--token-file", tok, "--vpn", "/bin/true", "--mtu", "70000")
	if _, _, err := wiring(o, nil, nil); err == nil || !strings.Contains(err.Error(), `--mtu "70000"`) {
		t.Fatalf("bad --mtu: %v", err)
	}
}
