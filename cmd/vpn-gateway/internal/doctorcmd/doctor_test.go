package doctorcmd

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

// The flags reach the run hook.
func TestDoctorOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"doctor", "--probe", "10.10.0.10,10.20.0.1", "--json", "-c", "/tmp/gw.yaml"})
	if err := root.Execute(); err != nil || strings.Join(got.Probes, " ") != "10.10.0.10 10.20.0.1" || !got.JSON || got.ConfigPath != "/tmp/gw.yaml" {
		t.Fatalf("doctor: %v %+v", err, got)
	}
}

// doctor's exit status for "doctor failed" is 2, not 1 (1 means
// findings): a file that does not load and a --probe that is not an
// address, each named.
func TestDoctorFailsWithTwo(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(good, []byte(config.Example), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Options{
		{ConfigPath: filepath.Join(dir, "missing.yaml")},
		{ConfigPath: good, Probes: []string{"db.internal"}},
	} {
		o.IO = cmdutil.Test(io.Discard, io.Discard)
		err := Run(context.Background(), o)
		if cmdutil.ExitCode(err) != 2 || !(strings.Contains(err.Error(), "missing.yaml") || strings.Contains(err.Error(), `--probe "db.internal": not an IP address`)) {
			t.Errorf("%+v: exit %d, %v", o, cmdutil.ExitCode(err), err)
		}
	}
}
