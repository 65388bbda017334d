// Package down implements `vpn down`.
package down

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/routes"
)

// Schema names the format of `vpn down --json` (docs/JSON.md).
var Schema = jsonout.Schema("down", 1)

// Result is what `vpn down` did.
type Result struct {
	// State: "disconnected" (the agent took the tunnel down),
	// "not-connected" (nothing was up) or "recovered" (no agent ran; what
	// a crashed session left was undone from the journal).
	State string `json:"state"`
	// Undone and Swept count the journal's changes undone and leftovers
	// removed by a recovery.
	Undone   int      `json:"undone"`
	Swept    int      `json:"swept"`
	Warnings []string `json:"warnings"`
}

// NewCmd returns `vpn down`. run replaces the effect in tests.
func NewCmd(f *factory.Factory, run func(context.Context) (*Result, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Disconnect and restore the routing table (succeeds when nothing is up)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if run == nil {
				run = func(ctx context.Context) (*Result, error) { return Run(ctx, f) }
			}
			res, err := run(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return jsonout.Write(f.Out, Schema, res)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(f.ErrOut, "warning: %s\n", w)
			}
			switch res.State {
			case "disconnected":
				fmt.Fprintln(f.Out, "Disconnected; routing table restored.")
			case "not-connected":
				fmt.Fprintln(f.Out, "Not connected.")
			default:
				fmt.Fprintf(f.Out, "No agent was running; restored what a crashed session left: %d changes undone, %d leftovers removed.\n", res.Undone, res.Swept)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (schema "+Schema+")")
	return cmd
}

// Run stops the tunnel through the agent; without an agent it restores what
// a crashed session left, from the journal (agent.RecoverOffline).
func Run(ctx context.Context, f *factory.Factory) (*Result, error) {
	res := &Result{Warnings: []string{}}
	c := f.Control()
	st, err := c.Down(ctx)
	if err == nil {
		if st.Error != "" {
			res.Warnings = append(res.Warnings, st.Error)
		}
		// The agent exits after answering: done means gone, so that a
		// `vpn up` right after starts a new agent instead of asking the
		// exiting one (as the tray's Disconnect).
		c.WaitGone(ctx)
		res.State = "disconnected"
		return res, nil
	}
	// An agent that dropped the down may have died under us (killed a
	// moment ago): once it no longer answers, recover from its journal
	// below. A refusal (control.ErrNoAccess) or the agent's own error is
	// the answer.
	if !errors.Is(err, control.ErrNoAgent) && !(errors.Is(err, control.ErrTransient) && c.WaitGone(ctx)) {
		return nil, err
	}
	sys, err := routes.NewSystem()
	if err != nil {
		return nil, err
	}
	rec, err := agent.RecoverOffline(f.StateDir, sys)
	if err != nil {
		return nil, err
	}
	if warn, done := rec.DNSNotes(); warn != "" {
		fmt.Fprintf(f.ErrOut, "warning: %s\n", warn)
	} else if done != "" {
		fmt.Fprintf(f.Out, "No agent was running; %s.\n", done)
	}
	if rec.Clean {
		res.State = "not-connected"
		return res, nil
	}
	res.State, res.Undone, res.Swept = "recovered", len(rec.Routes.Undone), len(rec.Routes.Swept)
	res.Warnings = append(res.Warnings, rec.Routes.Problems...)
	return res, nil
}
