//go:build !linux

package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"

	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// The gateway forwards with Linux policy routing (netlink rules and
// tables); elsewhere it builds, so the module cross-compiles, and refuses
// to start with the reason.
var errNotLinux = fmt.Errorf("the gateway needs Linux (policy routing over netlink); it cannot run on %s", runtime.GOOS)

func enableForwarding() (func(), error)                { return nil, errNotLinux }
func setupLink(config.Network) error                   { return errNotLinux }
func setupPolicy(config.Network) error                 { return errNotLinux }
func teardownPolicy(config.Network)                    {}
func changeAllow(config.Network, []netip.Prefix) error { return errNotLinux }
func moveTable(config.Network, int) error              { return errNotLinux }
func linkExists(string) bool                           { return false }
func closeHost(hostguard.Spec) error                   { return errNotLinux }
func openHost(*slog.Logger)                            {}
func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
