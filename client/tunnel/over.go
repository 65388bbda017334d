package tunnel

import (
	"fmt"
	"log/slog"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Over is what UpOver runs a tunnel on instead of a kernel TUN and UDP
// sockets: in unit tests, wireguard-go's tun/tuntest.ChannelTUN and
// conn/bindtest, so the agent's code above the device runs without root.
type Over struct {
	TUN  tun.Device
	Bind conn.Bind
	// Closed, when set, runs once the device stopped (a test's in-memory
	// routes System removes the link there, as the kernel would).
	Closed func()
}

// UpOver is Up on o: the same WireGuard configuration (keys, endpoint,
// allowed IPs, keepalive), with no link, no addresses and no UAPI socket.
// On error nothing is left running.
func UpOver(cfg Config, name string, o Over, log *slog.Logger) (*Tunnel, error) {
	if name == "" {
		return nil, fmt.Errorf("tunnel over a test device: no name")
	}
	wgLog := &device.Logger{
		Verbosef: func(string, ...any) {},
		Errorf: func(format string, args ...any) {
			log.Warn(fmt.Sprintf(format, args...), "interface", name)
		},
	}
	dev := device.NewDevice(o.TUN, o.Bind, wgLog)
	t := &Tunnel{Name: name, MTU: cfg.MTU, wg: dev, close: func() {
		dev.Close()
		if o.Closed != nil {
			o.Closed()
		}
	}}
	if err := t.configure(cfg); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}
