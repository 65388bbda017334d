package agent

import (
	"net/netip"
	"syscall"

	"github.com/clearpath-vpn/clearpath/routes"
)

// markControl marks the agent's own connections to the gateway with the
// WireGuard socket's fwmark while a fail-closed block is held (held
// returns the blocked tunnel's endpoint): they then skip the block, as
// the WireGuard packets to that same address do, so `vpn up` from blocked
// can register before the block is lifted. Any other address stays
// unmarked and meets the block.
func markControl(held func() (netip.Addr, bool)) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, c syscall.RawConn) error {
		ep, ok := held()
		if !ok {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil || ap.Addr().Unmap() != ep.Unmap() {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, routes.FwMark)
		}); err != nil {
			return err
		}
		return serr
	}
}
