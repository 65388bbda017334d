//go:build !linux

package gateway

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// The gateway forwards with Linux policy routing (netlink rules and
// tables); elsewhere it builds, so the module cross-compiles, and refuses
// to start with the reason.
var errNotLinux = fmt.Errorf("the gateway needs Linux (policy routing over netlink); it cannot run on %s", runtime.GOOS)

func newSystem() (routes.System, error) { return nil, errNotLinux }
func setLinkUp(string) error            { return errNotLinux }
func linkExists(string) bool            { return false }
func closeHost(hostguard.Spec) error    { return errNotLinux }
func openHost(*slog.Logger)             {}
