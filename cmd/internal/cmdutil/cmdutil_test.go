package cmdutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// One exit-status mapping: nil 0, an ExitError its code (wrapped too),
// anything else 1.
func TestExitCode(t *testing.T) {
	for err, want := range map[error]int{
		nil:                                  0,
		errors.New("x"):                      1,
		Exit(2, errors.New("doctor failed")): 2,
		Exit(1, nil):                         1,
		fmt.Errorf("ctx: %w", Exit(2, nil)):  2,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
}

// Execute prints "prog: message" once, nothing for a silent ExitError,
// the chain with debug, and returns the status.
func TestExecute(t *testing.T) {
	run := func(err error, debug bool) (string, int) {
		var out bytes.Buffer
		root := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return err }}
		root.SetArgs(nil)
		code := Execute(root, "prog", &out, &debug)
		return out.String(), code
	}
	if out, code := run(nil, false); out != "" || code != 0 {
		t.Errorf("success: %q %d", out, code)
	}
	if out, code := run(Exit(1, nil), false); out != "" || code != 1 {
		t.Errorf("silent exit 1: %q %d", out, code)
	}
	if out, code := run(Exit(2, fmt.Errorf("doctor: %w", errors.New("no netlink"))), false); out != "prog: doctor: no netlink\n" || code != 2 {
		t.Errorf("exit 2 with a message: %q %d", out, code)
	}
	if out, code := run(fmt.Errorf("load: %w", errors.New("bad")), true); !strings.HasPrefix(out, "prog: load: bad\nprog: debug: error chain:\n") || code != 1 {
		t.Errorf("debug: %q %d", out, code)
	}
}

// A table dashes empty cells and aligns columns.
func TestTable(t *testing.T) {
	var b bytes.Buffer
	tb := NewTable(&b, "USER", "HOST")
	tb.Row("alice", "")
	tb.Flush()
	if b.String() != "USER   HOST\nalice  -\n" {
		t.Errorf("%q", b.String())
	}
}

// --config binds to the factory (--state-dir is client/local's); Run calls the hook when given.
func TestFlagsAndRun(t *testing.T) {
	f := &Factory{IOStreams: Test(nil, nil), StateDir: "/var/lib/clearpath"}
	var seen *Factory
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { seen = f; return nil }}
	AddConfigFlag(cmd, f)
	cmd.SetArgs([]string{"-c", "/etc/gw.yaml"})
	if err := cmd.Execute(); err != nil || seen.ConfigPath != "/etc/gw.yaml" {
		t.Fatalf("%v %+v", err, seen)
	}
	type opts struct{ n int }
	o := &opts{n: 1}
	hook := func(_ context.Context, o *opts) error { o.n = 2; return nil }
	real := func(_ context.Context, o *opts) error { o.n = 3; return nil }
	if Run(context.Background(), o, hook, real); o.n != 2 {
		t.Errorf("with a hook: %d", o.n)
	}
	if Run(context.Background(), o, nil, real); o.n != 3 {
		t.Errorf("without: %d", o.n)
	}
	if b, err := io.ReadAll(Test(nil, nil).In); err != nil || len(b) != 0 {
		t.Errorf("test stdin: %q %v", b, err)
	}
}
