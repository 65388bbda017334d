// Package factory is vpn's cmdutil.Factory (state dir, IO streams) with
// the agent connection added, so commands receive it instead of reaching
// for globals and tests can swap it.
package factory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/statedir"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// DefaultStateDir is used when neither --state-dir nor CLEARPATH_STATE_DIR is set.
const DefaultStateDir = control.DefaultStateDir

// Factory is shared by the commands: cmdutil's (StateDir, Out, ErrOut)
// and the agent of the state dir.
type Factory struct {
	*cmdutil.Factory
}

// New returns the factory for a real run.
func New() *Factory {
	dir := envvar.Get("STATE_DIR")
	if dir == "" {
		dir = DefaultStateDir
	}
	return &Factory{&cmdutil.Factory{IOStreams: cmdutil.System(), StateDir: dir}}
}

// ForTest returns a factory of stateDir writing to out and errOut.
func ForTest(stateDir string, out, errOut io.Writer) *Factory {
	return &Factory{&cmdutil.Factory{IOStreams: cmdutil.Test(out, errOut), StateDir: stateDir}}
}

// Socket is the control socket of the agent of this state dir.
func (f *Factory) Socket() string { return control.SocketFor(f.StateDir) }

// Control returns a client of the agent of this state dir.
func (f *Factory) Control() *control.Client {
	return control.NewClient(f.Socket())
}

// EnsureAgent returns a client of a running agent, starting one (detached,
// in this network namespace) when none answers and we are root.
func (f *Factory) EnsureAgent(ctx context.Context) (*control.Client, error) {
	c := f.Control()
	// An agent killed a moment ago can still accept and then reset a
	// connection while the kernel tears it down: ask again until it is
	// clearly alive or clearly gone.
	var err error
	for i := 0; i < 40; i++ {
		if _, err = c.Status(ctx); err == nil {
			return c, nil
		} else if errors.Is(err, control.ErrNoAgent) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !errors.Is(err, control.ErrNoAgent) {
		return nil, err // includes control.ErrNoAccess: the agent runs, not for us
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("no agent is running, and starting one needs root: start the service " +
			"(sudo systemctl start clearpath-agent; macOS: sudo launchctl kickstart system/dev.clearpath.agent), or run this vpn up with sudo")
	}
	if err := statedir.Ensure(f.StateDir); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := statedir.OpenFile(f.StateDir, "agent.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, "agent", "--state-dir", f.StateDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this CLI and its terminal
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The agent answers some 10-20 ms after it starts; poll often, as the
	// wait is part of every `vpn up` (bench/: set-up time).
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("agent exited at start (%v); see %s", err, filepath.Join(f.StateDir, "agent.log"))
		case <-time.After(5 * time.Millisecond):
		}
		if _, err := c.Status(ctx); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("agent did not answer within 5s; see %s", filepath.Join(f.StateDir, "agent.log"))
}
