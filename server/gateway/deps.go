package gateway

import (
	"log/slog"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// netDeps are the gateway's edges to the host's network: the routes System
// (the only writer of routes, rules, addresses and forwarding), the
// WireGuard devices and their configuration, and the host guard. Serve
// uses the host's; unit tests put in-memory ones (fakenet_test.go).
type netDeps struct {
	sys       func() (routes.System, error)
	wg        func() (wgClient, error)
	newTunnel func(n config.Network, log *slog.Logger) (tunnel, error)
	guard     hostGuardOps
}

// wgClient configures and reads WireGuard devices (*wgctrl.Client over UAPI).
type wgClient interface {
	ConfigureDevice(name string, cfg wgtypes.Config) error
	Device(name string) (*wgtypes.Device, error)
	Close() error
}

// tunnel is one network's device (a wireguard-go TUN on the host).
type tunnel interface {
	Up() error // the device and its link
	Close()    // the kernel removes the link with its addresses and routes
}

// hostGuardOps installs, removes and checks the host guard (nftables).
type hostGuardOps interface {
	Apply(spec hostguard.Spec) error
	Remove(log *slog.Logger)
	Exists() (bool, error)
}

func hostDeps() *netDeps {
	return &netDeps{
		sys:       newSystem,
		wg:        func() (wgClient, error) { return wgctrl.New() },
		newTunnel: newHostTunnel,
		guard:     nftGuard{},
	}
}

// hostTunnel is a wireguard-go device on a TUN whose link Up also sets up.
type hostTunnel struct{ *wgdev.Device }

func newHostTunnel(n config.Network, log *slog.Logger) (tunnel, error) {
	// The in-flight bound (wgdev.DefaultInflight, CLEARPATH_WG_INFLIGHT)
	// keeps a bulk transfer from queueing hundreds of MiB of packets.
	dev, err := wgdev.Create(n.Interface, n.MTU, log)
	if err != nil {
		return nil, err
	}
	return hostTunnel{dev}, nil
}

func (t hostTunnel) Up() error {
	if err := t.Device.Up(); err != nil {
		return err
	}
	return setLinkUp(t.Name)
}

type nftGuard struct{}

func (nftGuard) Apply(spec hostguard.Spec) error { return closeHost(spec) }
func (nftGuard) Remove(log *slog.Logger)         { openHost(log) }
func (nftGuard) Exists() (bool, error)           { return hostguard.Exists() }
