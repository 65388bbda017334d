// Package agenttest runs a stand-in agent on a real control socket for the
// tray's tests: the real control server and client, with a scripted
// handler behind them that follows the agent's state machine (down ->
// connecting -> up -> down and exit), so the tray's side of the protocol is
// exercised for real without root or a gateway.
package agenttest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/routes"
)

// Agent is a scripted agent serving control.SocketPath(Dir).
type Agent struct {
	Dir string

	// life is held while starting and stopping, as the real agent holds
	// its state dir's lock until it has exited: a new agent cannot start
	// while the old one still removes its socket.
	life   sync.Mutex
	mu     sync.Mutex
	status control.Status
	// UpErr, when set, makes the next Up fail with it (as the agent does:
	// state down, the reason in Error).
	UpErr error
	// Gate, when set, holds Up in "connecting" until it is closed.
	Gate chan struct{}
	// Pushed, when set, is what the gateway pushes in place of the
	// default networks; the real agent's consent rule (routes.Consent)
	// drops a capture of all traffic without all_traffic, with its notice.
	Pushed []netip.Prefix
	Ups    []control.UpRequest
	Downs  int
	// Leftovers is what the next restore reports swept; Restores counts
	// the restores done.
	Leftovers int
	Restores  int
	srv       *http.Server
	ln        net.Listener
	stopped   chan struct{}
}

// New returns an agent for dir that is not running yet.
func New(dir string) *Agent { return &Agent{Dir: dir} }

// Start serves the socket, like `vpn agent` starting.
func (a *Agent) Start() error {
	a.life.Lock()
	defer a.life.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return nil
	}
	sock := control.SocketPath(a.Dir)
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	a.status = control.Status{State: control.StateDown}
	a.ln, a.stopped = ln, make(chan struct{})
	a.srv = &http.Server{Handler: control.NewServer(a, func() { a.Stop() }, control.Policy{Open: true})}
	go a.srv.Serve(ln)
	return nil
}

// StartT starts the agent and stops it when the test ends.
func (a *Agent) StartT(t testing.TB) {
	t.Helper()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
}

// Stop ends the agent as `vpn down` or a crash does: the socket goes away.
func (a *Agent) Stop() {
	a.life.Lock()
	defer a.life.Unlock()
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	os.Remove(filepath.Join(a.Dir, control.SocketName))
}

// Running tells whether the socket is served.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.srv != nil
}

// Set replaces the reported status (e.g. to move counters or expiry).
func (a *Agent) Set(fn func(*control.Status)) {
	a.mu.Lock()
	fn(&a.status)
	a.mu.Unlock()
}

// Status implements control.Handler.
func (a *Agent) Status() control.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.AgentPID = os.Getpid()
	return s
}

// Up implements control.Handler.
func (a *Agent) Up(ctx context.Context, req control.UpRequest) (control.Status, error) {
	a.mu.Lock()
	a.Ups = append(a.Ups, req)
	if a.status.State == control.StateUp {
		s := a.status
		a.mu.Unlock()
		return s, errors.New("already up: run `vpn down` first")
	}
	a.status = control.Status{State: control.StateConnecting, Server: req.Server}
	gate, upErr := a.Gate, a.UpErr
	a.UpErr = nil
	a.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			upErr = ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if upErr != nil {
		a.status = control.Status{State: control.StateDown, Server: req.Server, Error: upErr.Error()}
		return a.status, upErr
	}
	now := time.Now().UTC()
	exp := now.Add(12 * time.Hour)
	iface := req.Interface
	if iface == "" {
		iface = "cp0"
	}
	network := req.Network
	if network == "" {
		network = "eng"
	}
	hs := now
	age := 0.5
	allowed := []string{"10.10.0.0/16", "fd10:10::/64"}
	var notices []string
	full := false
	if a.Pushed != nil {
		kept, dropped := routes.Consent(a.Pushed, req.AllTraffic)
		allowed = allowed[:0]
		for _, p := range kept {
			allowed = append(allowed, p.String())
			full = full || p.Bits() == 0 // as installed, not as asked
		}
		if n := routes.ConsentNotice(dropped); n != "" {
			notices = append(notices, n)
		}
	}
	a.status = control.Status{State: control.StateUp, Notices: notices, RouteLAN: req.RouteLAN, FullTunnel: full, Server: req.Server, Network: network, User: "alice-sub", Email: "alice@example.com",
		Interface: iface, Addresses: []string{"100.64.0.2/32", "fd00:64::2/128"}, Endpoint: "198.51.100.1:51820",
		GatewayPublicKey: "gwkey", AllowedIPs: allowed,
		LatestHandshake: &hs, HandshakeAgeSec: &age, RxBytes: 1000, TxBytes: 2000,
		Routes:      []string{"10.10.0.0/16 dev " + iface + " table 7411 proto 197"},
		Rules:       []string{"4200: not from all fwmark 0x7411 lookup 7411 proto 197"},
		Overlaps:    []control.Overlap{{Pushed: "10.10.0.0/16", Local: "10.10.5.0/24 dev eth1", Winner: "lan"}},
		ExpiresAt:   &exp,
		ConnectedAt: &now,
	}
	return a.status, nil
}

// Down implements control.Handler: the agent exits after answering.
func (a *Agent) Down(context.Context) (control.Status, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Downs++
	a.status = control.Status{State: control.StateDown}
	return a.status, nil
}

// Restore implements control.Restorer as the agent does: refused while a
// session runs; otherwise it reports Leftovers as swept, once.
func (a *Agent) Restore(context.Context) (control.RestoreReport, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.status.State != control.StateDown {
		return control.RestoreReport{}, control.ErrSessionActive
	}
	a.Restores++
	rep := control.RestoreReport{Swept: a.Leftovers}
	a.Leftovers = 0
	return rep, nil
}

// RestoreCalls returns how many restores were done.
func (a *Agent) RestoreCalls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Restores
}

// UpCalls returns the up requests seen so far.
func (a *Agent) UpCalls() []control.UpRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]control.UpRequest(nil), a.Ups...)
}

// DownCalls returns how many downs were seen.
func (a *Agent) DownCalls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Downs
}
