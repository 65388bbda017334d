//go:build !linux

package agent

import (
	"net/netip"
	"syscall"
)

// markControl: macOS pins the endpoint with a host route outside the
// tunnel (routes.planMac), so the gateway's API on that address needs no
// mark.
func markControl(func() (netip.Addr, bool)) func(network, address string, c syscall.RawConn) error {
	return nil
}
