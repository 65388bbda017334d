package up

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/progress"
)

type slowAgent struct{ wait time.Duration }

func (a slowAgent) Up(ctx context.Context, req control.UpRequest) (*control.Status, error) {
	time.Sleep(a.wait)
	return &control.Status{State: control.StateUp, Server: req.Server, Network: "eng", Interface: "cp0", Addresses: []string{"100.64.0.2/32"}}, nil
}

// A slow bring-up names what it waits for on a terminal, and the line is
// gone when it connects; --json output carries the status schema.
func TestUpShowsTheWaitOnATerminal(t *testing.T) {
	var out, errOut bytes.Buffer
	f := factory.ForTest(t.TempDir(), &out, &errOut)
	o := &Options{UpOptions: local.UpOptions{Server: "https://vpn.example.com"}, progress: progress.Forced(&errOut, 20*time.Millisecond)}
	if err := connect(context.Background(), f, slowAgent{150 * time.Millisecond}, o, "tok", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "waiting for the tunnel: registration at https://vpn.example.com, handshake, a reply through it") || !strings.HasSuffix(errOut.String(), "\r\033[K") {
		t.Errorf("stderr: %q", errOut.String())
	}
	if !strings.HasPrefix(out.String(), "Connected to https://vpn.example.com (network eng)") {
		t.Errorf("stdout: %q", out.String())
	}
	out.Reset()
	o.JSON = true
	o.progress = nil // as off a terminal
	errOut.Reset()
	if err := connect(context.Background(), f, slowAgent{0}, o, "tok", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["schema"] != "clearpath.status/v1" || errOut.Len() != 0 {
		t.Errorf("vpn up --json: %v %s (stderr %q)", err, out.String(), errOut.String())
	}
}

// startingAgent answers the up only after Ensure (as local.Client with no
// agent running: the first up finds nothing listening).
type startingAgent struct {
	ups, ensures int
	ensureErr    error
	upErr        error
}

func (a *startingAgent) Up(ctx context.Context, req control.UpRequest) (*control.Status, error) {
	a.ups++
	if a.upErr != nil {
		return nil, a.upErr
	}
	if a.ensures == 0 {
		return nil, fmt.Errorf("%w (/run/clearpath/agent.sock)", control.ErrNoAgent)
	}
	return &control.Status{State: control.StateUp, Server: req.Server, Network: "eng", Interface: "cp0"}, nil
}

func (a *startingAgent) Ensure(context.Context) error { a.ensures++; return a.ensureErr }

// The up request itself finds out whether an agent runs: none, and the
// agent is started (Ensure) and asked again; a start that fails is the
// error, as is; a socket that refuses us is said as a status says it, an
// agent's refusal of the up is "up failed".
func TestUpStartsTheAgentOnlyWhenNoneAnswers(t *testing.T) {
	var out bytes.Buffer
	f := factory.ForTest(t.TempDir(), &out, io.Discard)
	o := &Options{UpOptions: local.UpOptions{Server: "https://vpn.example.com"}}
	a := &startingAgent{}
	var ready time.Time
	if err := connect(context.Background(), f, a, o, "tok", time.Now(), &ready); err != nil || a.ups != 2 || a.ensures != 1 || ready.IsZero() {
		t.Fatalf("no agent: %v, %d ups, %d ensures", err, a.ups, a.ensures)
	}
	a = &startingAgent{ensureErr: local.ErrStartNeedsRoot}
	if err := connect(context.Background(), f, a, o, "tok", time.Now(), nil); err != local.ErrStartNeedsRoot || a.ups != 1 {
		t.Errorf("no agent, not root: %v after %d ups", err, a.ups)
	}
	sock := fmt.Errorf("cannot open the agent's socket /run/clearpath/agent.sock: %w", control.ErrNoAccess)
	a = &startingAgent{upErr: sock}
	if err := connect(context.Background(), f, a, o, "tok", time.Now(), nil); err != sock || a.ensures != 0 {
		t.Errorf("socket refused: %v, %d ensures", err, a.ensures)
	}
	a = &startingAgent{upErr: &control.AccessError{Reason: "permission denied: only root may name the tunnel interface"}}
	if err := connect(context.Background(), f, a, o, "tok", time.Now(), nil); err == nil || err.Error() != "up failed: permission denied: only root may name the tunnel interface" || a.ensures != 0 {
		t.Errorf("agent refused the up: %v, %d ensures", err, a.ensures)
	}
}
