// Package cmdutil is the one command convention of the ClearPath binaries
// (vpn, vpn-gateway, vpn-tray), in the GitHub CLI's shape:
//
//   - a Factory holds what every command needs (the IO streams, the
//     client's state dir, the gateway's configuration path) and is built
//     once in main; commands receive it instead of reaching for globals;
//   - each command package has an Options struct filled from the flags and
//     a NewCmd(f, runF) whose runF replaces the effect, so a test parses
//     real arguments and sees the Options the command would act on;
//   - one ExitError carries an exit status other than 1;
//   - one Execute prints the error for a person (internal/usererr: one
//     line, the whole chain with --debug) and returns the exit status.
//
// It lives under cmd/internal so that only the binaries can import it: the
// libraries (client/, server/, tray/) never depend on CLI plumbing, and it
// imports nothing of theirs, so the client binary does not link the
// gateway's store nor the gateway the client's agent.
package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/internal/usererr"
)

// DefaultConfig is the gateway's configuration file without --config.
const DefaultConfig = "/etc/clearpath/gateway.yaml"

// IOStreams are a command's input and output.
type IOStreams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// System returns the process's streams.
func System() IOStreams { return IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// Test returns streams writing to out and errOut (tests).
func Test(out, errOut io.Writer) IOStreams {
	return IOStreams{In: eofReader{}, Out: out, ErrOut: errOut}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Factory is what the commands of a binary share. vpn fills StateDir
// (--state-dir), vpn-gateway ConfigPath (--config); a field a binary does
// not use stays empty.
type Factory struct {
	IOStreams
	// StateDir is the client's state directory (agent socket, journals).
	StateDir string
	// ConfigPath is the gateway's configuration file.
	ConfigPath string
}

// New returns a factory on the process's streams.
func New() *Factory { return &Factory{IOStreams: System(), ConfigPath: DefaultConfig} }

// AddConfigFlag gives cmd and its subcommands the one --config / -c flag,
// bound to f.ConfigPath. Commands that read the file take f.ConfigPath
// when they run; `init` writes there only when the flag was given.
func AddConfigFlag(cmd *cobra.Command, f *Factory) {
	if f.ConfigPath == "" {
		f.ConfigPath = DefaultConfig
	}
	cmd.PersistentFlags().StringVarP(&f.ConfigPath, "config", "c", f.ConfigPath, "the gateway's configuration file (it names the store and the admin socket)")
}

// AddDebugFlag gives root the --debug flag (default: CLEARPATH_DEBUG). Once
// the flags are parsed it exports CLEARPATH_DEBUG=1 (a process the command
// starts inherits it) and, with logDebug, logs at debug level on stderr.
func AddDebugFlag(root *cobra.Command, usage string, logDebug bool) *bool {
	debug := usererr.Debug()
	root.PersistentFlags().BoolVar(&debug, "debug", debug, usage+" (env CLEARPATH_DEBUG=1)")
	cobra.OnInitialize(func() {
		if debug {
			os.Setenv("CLEARPATH_DEBUG", "1")
			if logDebug {
				slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
			}
		}
	})
	return &debug
}

// ExitError ends a command with exit status Code. With Err, Execute prints
// Err; without, the command has already printed its answer (findings, "not
// reachable", a diff) and scripts read the status alone.
//
// The statuses the docs promise: 0 success; 1 failure, or the answer is
// "no" (findings, differs, unhealthy, not reachable, check not ok); 2 the
// doctors themselves failed.
type ExitError struct {
	Code int
	Err  error
}

// Exit returns an ExitError with code and err (err may be nil).
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

func (e *ExitError) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit status for err: 0 for nil, an ExitError's
// code, else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// Execute runs root, prints a failure for a person on errOut as "prog:
// line" (the whole chain when *debug) and returns the exit status. main
// passes it to os.Exit.
func Execute(root *cobra.Command, prog string, errOut io.Writer, debug *bool) int {
	root.SilenceUsage, root.SilenceErrors = true, true
	err := root.Execute()
	if err != nil {
		d := usererr.Debug()
		if debug != nil {
			d = d || *debug
		}
		usererr.Print(errOut, prog, err, d)
	}
	return ExitCode(err)
}

// Table writes aligned columns; Flush ends it.
type Table struct{ tw *tabwriter.Writer }

// NewTable starts a table on w with a header row.
func NewTable(w io.Writer, header ...string) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.Row(header...)
	return t
}

// Row adds one row; an empty cell is shown as "-".
func (t *Table) Row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, Dash(c))
	}
	fmt.Fprintln(t.tw)
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }

// Dash shows an empty value as "-".
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// TestRoot is a root command holding cmds with the flags every root has
// (--config, --debug), for tests that run a command package as its binary
// would: root.SetArgs, then Execute.
func TestRoot(f *Factory, cmds ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{Use: "test", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(f.Out)
	root.SetErr(f.ErrOut)
	AddConfigFlag(root, f)
	root.PersistentFlags().Bool("debug", false, "")
	root.AddCommand(cmds...)
	return root
}

// Run is the end of a command's RunE: runF (a test's hook) when set, else
// run, on the options the flags filled.
func Run[O any](ctx context.Context, o *O, runF, run func(context.Context, *O) error) error {
	if runF != nil {
		return runF(ctx, o)
	}
	return run(ctx, o)
}
