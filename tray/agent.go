package tray

import (
	"context"
	"errors"
	"strings"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
)

// Agent is the part of the agent's control API the tray uses.
type Agent interface {
	Status(ctx context.Context) (*control.Status, error)
	Up(ctx context.Context, req control.UpRequest) (*control.Status, error)
	Down(ctx context.Context) (*control.Status, error)
	// Restore asks the agent to restore the routing table while no
	// session runs (control.ErrSessionActive otherwise).
	Restore(ctx context.Context) (*control.RestoreReport, error)
	// WaitGone waits a moment until no agent answers (one exits after a
	// down) and reports whether it is gone.
	WaitGone(ctx context.Context) bool
}

// NewAgent returns the client of the agent of stateDir (local.Client:
// its Status rides out an agent on its way out, so the tray does not
// flash an error after every Disconnect, and a user the agent refuses
// sees control.ErrNoAccess, never "disconnected").
func NewAgent(stateDir string) Agent { return local.New(stateDir) }

// NetworksFromError returns the networks the gateway offered when a
// connect failed because the user must pick one.
func NetworksFromError(err error) []string {
	if err == nil {
		return nil
	}
	var withNets interface{ Networks() []string }
	if errors.As(err, &withNets) {
		return withNets.Networks()
	}
	// client/gwapi appends " [networks: a, b]" to the gateway's refusal and
	// the agent relays it as text.
	msg := err.Error()
	i := strings.LastIndex(msg, "[networks: ")
	if i < 0 {
		return nil
	}
	rest := msg[i+len("[networks: "):]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return nil
	}
	var out []string
	for _, n := range strings.Split(rest[:j], ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}
