package agent

import (
	"fmt"
	"log/slog"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/tunnel"
	"github.com/clearpath-vpn/clearpath/routes"
)

// preparedTunnel is a tunnel device made before the registration answered
// (tunnel.Pending on the machine).
type preparedTunnel interface {
	Name() string
	Up(tunnel.Config) (*tunnel.Tunnel, error)
	Close()
}

func machinePrepare(name string, mtu int, priv wgtypes.Key, log *slog.Logger) (preparedTunnel, error) {
	p, err := tunnel.Prepare(name, mtu, priv, routes.FwMark, log)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// prepJob is the work of `up` that needs nothing from the gateway, done
// while the registration is in flight: the route session begun (recovery
// of a crash, snapshot, fresh journal), the snapshot the pushed addresses
// are checked against, and the tunnel device made (TUN, wireguard-go
// with the device key, sockets bound). Peer, addresses and routes wait
// for the gateway's answer, so nothing routes through the device before.
type prepJob struct {
	done chan struct{}
	// Set before done closes.
	begun   bool // the route session began: failures must end it
	snap    *routes.Snapshot
	pending preparedTunnel
	took    time.Duration
	steps   []tunnel.Step // begin, snapshot: for "connect phases"
	devTook time.Duration // making the device (beside begin on a clean start)
	devErr  error
	err     error

	used bool // pending became the agent's tunnel (or was closed by Up)
}

// startPrepare runs the job in the background for a tunnel called name.
func (a *Agent) startPrepare(name string, mtu int, priv wgtypes.Key) *prepJob {
	j := &prepJob{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		start := time.Now()
		defer func() { j.took = time.Since(start) }()
		// With no journal (no crashed session to replay), the device is
		// made beside Begin: the sweep touches only routes and rules with
		// our marker, which a new device has none of. A journal may name
		// addresses on a device of this name: then Begin replays first.
		var dev chan struct{}
		if !a.engine.Active() {
			dev = make(chan struct{})
			go func() {
				defer close(dev)
				j.device(a, name, mtu, priv)
			}()
		}
		t := time.Now()
		if err := a.engine.Begin(); err != nil {
			j.err = fmt.Errorf("prepare routes: %w", err)
		} else {
			j.begun = true
			j.steps = append(j.steps, tunnel.Step{Name: "begin", Took: time.Since(t)})
			t = time.Now()
			if j.snap, err = a.sys.Snapshot(); err != nil {
				j.err = fmt.Errorf("read the routing state: %w", err)
			}
			j.steps = append(j.steps, tunnel.Step{Name: "snapshot", Took: time.Since(t)})
		}
		if dev != nil {
			<-dev
		} else if j.err == nil {
			j.device(a, name, mtu, priv)
		}
		if j.err == nil {
			j.err = j.devErr
		}
	}()
	return j
}

// device makes the tunnel device, timed.
func (j *prepJob) device(a *Agent, name string, mtu int, priv wgtypes.Key) {
	t := time.Now()
	if j.pending, j.devErr = a.edge.tunnelPrepare(name, mtu, priv, a.log); j.devErr != nil {
		j.devErr = fmt.Errorf("create tunnel: %w", j.devErr)
	}
	j.devTook = time.Since(t)
}

func (j *prepJob) wait() { <-j.done }

// abandon undoes the job after `up` failed: the device closed unless it
// became the agent's tunnel, the route session ended if it began.
func (a *Agent) abandon(j *prepJob) {
	j.wait()
	if j.pending != nil && !j.used {
		j.pending.Close()
	}
	if j.begun {
		a.teardown()
	}
}
