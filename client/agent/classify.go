package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/client/tunnel"
)

// Why `vpn up` failed, as the first words of its error: each cause has its
// own message and its own advice.
const (
	CauseAPIUnreachable = "gateway API unreachable"
	CauseUDPBlocked     = "UDP to the endpoint blocked"
	CauseNoTraffic      = "handshake but no traffic"
)

// How long `vpn up` waits before naming a cause, where the cause is
// clear: with the API reachable, no handshake after verdictAfter (counted
// from the start of `up`, at least minHandshakeWait after the tunnel came
// up) means the UDP path is blocked; a handshake but no probe reply for
// trafficWait means the tunnel carries nothing. WireGuard answers a
// handshake in one round trip and retries a lost one after 5 s, so on a
// lossy network one lost initiation can look like blocked UDP: the
// message says "likely" and retrying is cheap.
var (
	verdictAfter     = 4 * time.Second
	minHandshakeWait = 3 * time.Second
	trafficWait      = 3 * time.Second
)

// apiUnreachable reports whether a registration error means the gateway's
// API could not be reached at all (no TCP connection, no answer), as
// opposed to an answer that refused us.
func apiUnreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return true
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var to interface{ Timeout() bool }
	return errors.As(err, &to) && to.Timeout()
}

func registerError(server string, err error) error {
	if apiUnreachable(err) {
		return fmt.Errorf("%s: %s did not answer (%w). Nothing was changed. Check the server address and this network: "+
			"a firewall or proxy may block HTTPS to the gateway, or the gateway is down", CauseAPIUnreachable, server, err)
	}
	return fmt.Errorf("register with %s: %w", server, err)
}

// awaitTraffic probes the gateway's tunnel addresses (probeAll) while
// watching the WireGuard handshake, and names the cause as soon as it is
// clear instead of waiting for ctx's end: no handshake (UDP blocked), or
// a handshake but no reply (no traffic).
func awaitTraffic(ctx context.Context, probe func(ctx context.Context, src, dst netip.Addr) error, t *tunnel.Tunnel, ep netip.AddrPort, ours []netip.Prefix, gateway []string, upStart time.Time) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- probeAll(pctx, probe, ours, gateway) }()
	tunnelUp := time.Now()
	hsDeadline := upStart.Add(verdictAfter)
	if d := tunnelUp.Add(minHandshakeWait); d.After(hsDeadline) {
		hsDeadline = d
	}
	var handshake time.Time
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	verdict := func(cause error) error {
		cancel()
		<-done
		return cause
	}
	for {
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
			// ctx ended (--timeout) before a verdict.
			if handshake.IsZero() && !handshaked(t) {
				return udpBlocked(ep, time.Since(tunnelUp), err)
			}
			return noTraffic(ep, gateway, time.Since(tunnelUp), err)
		case <-tick.C:
		}
		if handshake.IsZero() && handshaked(t) {
			handshake = time.Now()
		}
		now := time.Now()
		switch {
		case handshake.IsZero() && now.After(hsDeadline):
			return verdict(udpBlocked(ep, now.Sub(tunnelUp), nil))
		case !handshake.IsZero() && now.After(handshake.Add(trafficWait)):
			return verdict(noTraffic(ep, gateway, now.Sub(handshake), nil))
		}
	}
}

func handshaked(t *tunnel.Tunnel) bool {
	s, err := t.Stats()
	return err == nil && !s.LastHandshake.IsZero()
}

func udpBlocked(ep netip.AddrPort, waited time.Duration, cause error) error {
	err := fmt.Errorf("%s: the gateway API answered and registered this device, but no WireGuard handshake came back from %s "+
		"(UDP port %d) in %v. Something between here and the gateway likely drops UDP to that port (a hotel, captive portal "+
		"or corporate firewall). Try another network, or ask this network's admin to allow UDP %d to %s. Nothing was changed",
		CauseUDPBlocked, ep, ep.Port(), waited.Round(100*time.Millisecond), ep.Port(), ep.Addr())
	if cause != nil {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	return err
}

func noTraffic(ep netip.AddrPort, gateway []string, waited time.Duration, cause error) error {
	err := fmt.Errorf("%s: the WireGuard handshake with %s completed, so UDP gets through and the keys are right, but no reply "+
		"from the gateway's tunnel address %v came back in %v. The gateway does not answer through the tunnel (its forwarding "+
		"or firewall), or something on this machine drops tunnel traffic (a firewall, a rule or route ahead of ClearPath's: "+
		"`vpn doctor` checks this side). Nothing was changed",
		CauseNoTraffic, ep, gateway, waited.Round(100*time.Millisecond))
	if cause != nil {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	return err
}
