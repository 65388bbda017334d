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

// gatewayInflight bounds the packets each direction of a gateway device
// holds (CLEARPATH_WG_INFLIGHT overrides it). Every packet sits in its own
// 64 KiB buffer, and the collector keeps a cycle's worth of pooled ones:
// with wgdev.DefaultInflight (256) one bulk transfer held about 52 MiB
// live and peaked at 73 MiB resident; with 128 it peaked at 64 MiB at the
// same throughput (TestGatewayBulkPeakRSS), 128 packets being still about
// the bandwidth-delay product of 1.5 Gbit/s over a 1 ms path.
const gatewayInflight = 128

// hostTunnel is a wireguard-go device on a TUN whose link Up also sets up.
type hostTunnel struct{ *wgdev.Device }

func newHostTunnel(n config.Network, log *slog.Logger) (tunnel, error) {
	dev, err := wgdev.CreateWithInflight(n.Interface, n.MTU, log, wgdev.InflightLimit(log, gatewayInflight))
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
