// Package local is the one local client of the agent, shared by the vpn
// CLI and the tray: where the state dir is, how the agent is reached and
// started, how long to ride out an agent on its way out, and the options
// of an up. The protocol itself (requests, answers, the error sentinels
// control.ErrNoAgent, control.ErrNoAccess and control.ErrTransient) is
// client/control's; offline recovery (no agent running) is
// agent.RecoverOffline, next to the journal it replays.
package local

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/pflag"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// StateDirEnv names the state dir variable, without envvar's prefix:
// CLEARPATH_STATE_DIR (the old VPN_STATE_DIR is still read, with a
// warning).
const StateDirEnv = "STATE_DIR"

// StateDir is the client's state dir as the environment names it, else
// control.DefaultStateDir: the default of every --state-dir.
func StateDir() string {
	if d := envvar.Get(StateDirEnv); d != "" {
		return d
	}
	return control.DefaultStateDir
}

// AddStateDirFlag adds --state-dir to fs, defaulting to *dir, or to
// StateDir() when *dir is empty.
func AddStateDirFlag(fs *pflag.FlagSet, dir *string) {
	def := *dir
	if def == "" {
		def = StateDir()
	}
	fs.StringVar(dir, "state-dir", def, "client state directory (env "+envvar.Prefix+StateDirEnv+")")
}

// Backoff is the client's one way of waiting for the agent: ask, wait
// First, then twice as long each time up to Max, for at most Budget in
// all.
type Backoff struct{ First, Max, Budget time.Duration }

// The waits. An agent answers some 10-20 ms after it starts, and the wait
// for it is part of every `vpn up` (bench/: set-up time), so polls start
// at 5 ms and are never more than 50 ms apart; an
// agent that is exiting resets connections for a moment.
var (
	// Transient rides out control.ErrTransient (an agent on its way out)
	// before a status is given up on.
	Transient = Backoff{First: 5 * time.Millisecond, Max: 50 * time.Millisecond, Budget: 2 * time.Second}
	// Gone is how long an agent that answered a down (or dropped one) is
	// given to exit.
	Gone = Backoff{First: 5 * time.Millisecond, Max: 50 * time.Millisecond, Budget: 3 * time.Second}
	// Started is how long a started agent is given to answer.
	Started = Backoff{First: 5 * time.Millisecond, Max: 50 * time.Millisecond, Budget: 5 * time.Second}
)

// Poll calls try until it reports done, waiting as b says between calls.
// It reports false when the budget ran out or ctx ended first.
func (b Backoff) Poll(ctx context.Context, try func() (done bool)) bool {
	deadline := time.Now().Add(b.Budget)
	wait := b.First
	for {
		if try() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}

// Client is the client of the agent of one state dir: control.Client's
// requests, with Status riding out an agent on its way out, and the means
// to start an agent and to wait for one to exit.
type Client struct {
	*control.Client
	// StateDir is the agent's state dir; Socket its control socket
	// (control.SocketFor).
	StateDir, Socket string
	// VPN is the vpn binary whose `agent` Start runs ("": this
	// executable, as for `vpn up`; the tray names the vpn beside it).
	VPN string
}

// New returns the client of the agent of stateDir.
func New(stateDir string) *Client {
	sock := control.SocketFor(stateDir)
	return &Client{Client: control.NewClient(sock), StateDir: stateDir, Socket: sock}
}

// Status is control.Client.Status asked again while the agent drops the
// connection (control.ErrTransient) for up to Transient's budget, until
// it answers or is clearly gone (control.ErrNoAgent).
func (c *Client) Status(ctx context.Context) (*control.Status, error) {
	var st *control.Status
	var err error
	Transient.Poll(ctx, func() bool {
		st, err = c.Client.Status(ctx)
		return !errors.Is(err, control.ErrTransient)
	})
	return st, err
}

// WaitGone waits (Gone's budget) until no agent answers: an agent exits
// after answering a down, and one that dropped a down may be dying. It
// reports whether it is gone; false means an agent still (or again)
// answers.
func (c *Client) WaitGone(ctx context.Context) bool {
	return Gone.Poll(ctx, func() bool {
		_, err := c.Client.Status(ctx)
		return errors.Is(err, control.ErrNoAgent)
	})
}
