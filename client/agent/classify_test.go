package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// Only an API that could not be reached is called unreachable: an answer
// that refuses us (401, 403, a bad config) keeps its own message.
func TestRegisterErrorNamesUnreachableAPI(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, err := range []error{
		fmt.Errorf("GET /api/v1/networks: %w", dial),
		fmt.Errorf("x: %w", context.DeadlineExceeded),
		&net.DNSError{Err: "no such host", Name: "vpn.example.com", IsNotFound: true},
		fmt.Errorf("x: %w", syscall.ENETUNREACH),
	} {
		if got := registerError("https://gw", err).Error(); !strings.HasPrefix(got, CauseAPIUnreachable+":") {
			t.Errorf("%v: want %q first, got %q", err, CauseAPIUnreachable, got)
		}
	}
	for _, err := range []error{
		&gwapi.APIError{Status: 403},
		errors.New("gateway sent a bad peer config: no addresses"),
	} {
		if got := registerError("https://gw", err).Error(); strings.Contains(got, CauseAPIUnreachable) {
			t.Errorf("%v: an answer is not unreachable: %q", err, got)
		}
	}
}

// Each way a connect fails, against the in-memory gateway (a real
// wireguard-go peer): its API closed, its WireGuard device down (API
// fine, no handshake), its pings dropped (handshake, no traffic). Each is
// named by its cause well before the request's 15 s timeout, and leaves
// the routing state as it was.
func TestUpNamesTheCause(t *testing.T) {
	for _, c := range []struct {
		cause string
		setup func(r *rig, req *control.UpRequest)
	}{
		{CauseAPIUnreachable, func(r *rig, req *control.UpRequest) { req.Server = "https://127.0.0.1:1" }},
		// The gateway forgets the peer right after registering it: its
		// WireGuard answers no handshake, as if UDP were dropped.
		{CauseUDPBlocked, func(r *rig, req *control.UpRequest) {
			r.gw.set(func(g *fakeGateway) {
				g.spoil = func(*api.PeerConfig) {
					k, _ := wgtypes.ParseKey(g.regs[len(g.regs)-1])
					if err := g.dev.IpcSet("public_key=" + hex.EncodeToString(k[:]) + "\nremove=true\n"); err != nil {
						t.Error(err)
					}
				}
			})
		}},
		{CauseNoTraffic, func(r *rig, req *control.UpRequest) { r.gw.set(func(g *fakeGateway) { g.mute = true }) }},
	} {
		t.Run(c.cause, func(t *testing.T) {
			r := newRig(t)
			before := r.snapshot()
			req := r.request()
			req.Timeout = 15 * time.Second
			c.setup(r, &req)
			start := time.Now()
			_, err := r.up(req)
			took := time.Since(start)
			if err == nil || !strings.HasPrefix(err.Error(), c.cause+":") {
				t.Fatalf("want an error starting %q, got %v", c.cause, err)
			}
			if took > 8*time.Second {
				t.Errorf("named after %v; want well before the 15 s timeout", took)
			}
			t.Logf("%v: %v", took.Round(10*time.Millisecond), err)
			r.sameAsBefore(before, "after the failed up")
		})
	}
}
