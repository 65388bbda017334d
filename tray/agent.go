package tray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clearpath-vpn/clearpath/client/control"
)

// Agent is the part of the agent's control API the tray uses.
type Agent interface {
	Status(ctx context.Context) (*control.Status, error)
	Up(ctx context.Context, req control.UpRequest) (*control.Status, error)
	Down(ctx context.Context) (*control.Status, error)
	// Restore asks the agent to restore the routing table while no
	// session runs (control.ErrSessionActive otherwise).
	Restore(ctx context.Context) (*control.RestoreReport, error)
}

// socketAgent is the control client of one state dir's agent.
type socketAgent struct {
	*control.Client
	path string
}

// NewAgent returns the control client of the agent of stateDir.
func NewAgent(stateDir string) Agent {
	p := control.SocketFor(stateDir)
	return socketAgent{Client: control.NewClient(p), path: p}
}

// Status tells "no agent" apart from "an agent runs but this user may not
// talk to it": control.Client reports every failed dial as ErrNoAgent, and
// showing "disconnected" while a tunnel is up would be wrong.
//
// An agent that is exiting (after a down) can still accept a connection
// and then reset it: such transport errors are asked again for a moment
// until the agent is clearly alive or clearly gone, as `vpn up` does, so
// the tray does not flash an error after every Disconnect.
func (a socketAgent) Status(ctx context.Context) (*control.Status, error) {
	st, err := a.Client.Status(ctx)
	for i := 0; i < 20 && transient(err); i++ {
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
		st, err = a.Client.Status(ctx)
	}
	if errors.Is(err, control.ErrNoAgent) {
		if _, serr := os.Stat(a.path); serr == nil {
			if aerr := unix.Access(a.path, unix.W_OK); aerr != nil {
				return nil, fmt.Errorf("the agent's socket %s is not open to this user (%v): run the tray as the user the agent serves, or as root", a.path, aerr)
			}
		}
	}
	return st, err
}

// transient tells a broken connection (reset, EOF) from "no agent" and
// from an answer of the agent.
func transient(err error) bool {
	if err == nil || errors.Is(err, control.ErrNoAgent) {
		return false
	}
	// control.Client wraps transport failures (reset, EOF, "server closed
	// idle connection") in the *url.Error of net/http; answers of the agent
	// are plain errors.
	var ue *url.Error
	var op *net.OpError
	return errors.As(err, &ue) || errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

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
