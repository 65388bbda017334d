package tunnel

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/icmpecho"
)

// Probe sends ICMP echo requests from src to dst until one is answered or
// ctx ends. It proves that packets cross the tunnel both ways (the first one
// also triggers the WireGuard handshake). The first resend comes after
// 2 ms, then the wait doubles up to 300 ms: a lost early request costs
// milliseconds, not a third of a second; a reply to any request counts.
// Requests sent while the handshake runs wait in wireguard-go's staging
// queue, so early resends cost nothing more.
func Probe(ctx context.Context, src, dst netip.Addr) error {
	_, err := icmpecho.Ping(ctx, src, dst, icmpecho.Options{Wait: 2 * time.Millisecond, MaxWait: 300 * time.Millisecond, Payload: "clearpath-probe"})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("no reply from %s through the tunnel: %w", dst, err)
	}
	return err
}
