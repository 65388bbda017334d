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
	steps   []tunnel.Step // begin, snapshot, device: for "connect phases"
	err     error

	used bool // pending became the agent's tunnel (or was closed by Up)
}

// startPrepare runs the job in the background for a tunnel called name.
func (a *Agent) startPrepare(name string, mtu int, priv wgtypes.Key) *prepJob {
	j := &prepJob{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		start := time.Now()
		last := start
		mark := func(name string) {
			now := time.Now()
			j.steps = append(j.steps, tunnel.Step{Name: name, Took: now.Sub(last)})
			last = now
		}
		defer func() { j.took = time.Since(start) }()
		if err := a.engine.Begin(); err != nil {
			j.err = fmt.Errorf("prepare routes: %w", err)
			return
		}
		j.begun = true
		mark("begin")
		if j.snap, j.err = a.sys.Snapshot(); j.err != nil {
			j.err = fmt.Errorf("read the routing state: %w", j.err)
			return
		}
		mark("snapshot")
		if j.pending, j.err = a.edge.tunnelPrepare(name, mtu, priv, a.log); j.err != nil {
			j.err = fmt.Errorf("create tunnel: %w", j.err)
			return
		}
		mark("device")
	}()
	return j
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
