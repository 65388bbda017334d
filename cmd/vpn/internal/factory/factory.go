// Package factory is vpn's cmdutil.Factory (state dir, IO streams) with
// the agent connection added, so commands receive it instead of reaching
// for globals and tests can swap it.
package factory

import (
	"context"
	"io"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
)

// Factory is shared by the commands: cmdutil's (StateDir, Out, ErrOut)
// and the agent of the state dir.
type Factory struct {
	*cmdutil.Factory
}

// New returns the factory for a real run.
func New() *Factory {
	return &Factory{&cmdutil.Factory{IOStreams: cmdutil.System(), StateDir: local.StateDir()}}
}

// ForTest returns a factory of stateDir writing to out and errOut.
func ForTest(stateDir string, out, errOut io.Writer) *Factory {
	return &Factory{&cmdutil.Factory{IOStreams: cmdutil.Test(out, errOut), StateDir: stateDir}}
}

// Socket is the control socket of the agent of this state dir.
func (f *Factory) Socket() string { return control.SocketFor(f.StateDir) }

// Control returns the client of the agent of this state dir.
func (f *Factory) Control() *local.Client { return local.New(f.StateDir) }

// EnsureAgent returns the client of a running agent, starting one (as
// local.Client.Ensure: detached, in this network namespace) when none
// answers and we are root.
func (f *Factory) EnsureAgent(ctx context.Context) (*local.Client, error) {
	c := f.Control()
	if err := c.Ensure(ctx); err != nil {
		return nil, err
	}
	return c, nil
}
