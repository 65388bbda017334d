// Package factory holds what every vpn command needs (state dir, output
// streams, the agent connection), so commands receive it instead of
// reaching for globals and tests can swap it.
package factory

import (
	"context"
	"io"
	"os"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
)

// Factory is shared by the commands.
type Factory struct {
	StateDir string
	Out      io.Writer
	ErrOut   io.Writer
}

// New returns the factory for a real run.
func New() *Factory {
	return &Factory{StateDir: local.StateDir(), Out: os.Stdout, ErrOut: os.Stderr}
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
