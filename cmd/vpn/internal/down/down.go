// Package down implements `vpn down`.
package down

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/routes"
)

// NewCmd returns `vpn down`. run replaces the effect in tests.
func NewCmd(f *factory.Factory, run func(context.Context) error) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Disconnect and restore the routing table (succeeds when nothing is up)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if run != nil {
				return run(cmd.Context())
			}
			return Run(cmd.Context(), f)
		},
	}
}

// Run stops the tunnel through the agent; without an agent it restores what
// a crashed session left, from the journal.
func Run(ctx context.Context, f *factory.Factory) error {
	st, err := f.Control().Down(ctx)
	if err == nil {
		if st.Error != "" {
			fmt.Fprintf(f.ErrOut, "warning: %s\n", st.Error)
		}
		fmt.Fprintln(f.Out, "Disconnected; routing table restored.")
		return nil
	}
	if !errors.Is(err, control.ErrNoAgent) {
		// The agent may have died under us (killed a moment ago): if it
		// no longer answers, recover from its journal below.
		if !agentGone(ctx, f) {
			return err
		}
	}
	unlock, err := agent.Lock(f.StateDir, 3*time.Second)
	if err != nil {
		return err
	}
	defer unlock()
	dns, derr := splitdns.Restore(f.StateDir)
	if derr != nil {
		fmt.Fprintf(f.ErrOut, "warning: resolv.conf: %v\n", derr)
	} else if dns.Changed {
		fmt.Fprintf(f.ErrOut, "warning: %s\n", dns.Message())
	} else if dns.Restored {
		fmt.Fprintf(f.Out, "No agent was running; %s.\n", dns.Message())
	}
	sys, serr := routes.NewSystem()
	if serr != nil {
		return serr
	}
	eng := routes.NewEngine(sys, f.StateDir)
	if !eng.Active() {
		if rs, rules, err := eng.Owned(); err == nil && len(rs)+len(rules) == 0 {
			fmt.Fprintln(f.Out, "Not connected.")
			return nil
		}
	}
	rep, err := eng.Recover()
	if err != nil {
		return fmt.Errorf("restore after a crashed session: %w", err)
	}
	fmt.Fprintf(f.Out, "No agent was running; restored what a crashed session left: %d changes undone, %d leftovers removed.\n", len(rep.Undone), len(rep.Swept))
	for _, p := range rep.Problems {
		fmt.Fprintf(f.ErrOut, "warning: %s\n", p)
	}
	return nil
}

func agentGone(ctx context.Context, f *factory.Factory) bool {
	for range 50 {
		if _, err := f.Control().Status(ctx); errors.Is(err, control.ErrNoAgent) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
