// Package wgdev runs a userspace wireguard-go device on a TUN interface in
// this process and exposes its UAPI socket in /var/run/wireguard, so wgctrl and
// `wg show` configure and inspect it exactly like a kernel WireGuard link.
// Both the client agent and the gateway use it.
package wgdev

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// SocketDir is where wireguard-go puts UAPI sockets. It is shared by every
// network namespace, which is why interface names must be unique per machine.
const SocketDir = "/var/run/wireguard"

// Device is a running wireguard-go device.
type Device struct {
	Name string
	Dev  *device.Device
	tun  tun.Device
	uapi net.Listener
	done chan struct{}
	// limits bound the packets in flight (nil: unbounded, as stock
	// wireguard-go on Linux).
	limits    *limits
	stopWatch func()
}

// SocketPath returns the UAPI socket path of interface name.
func SocketPath(name string) string { return filepath.Join(SocketDir, name+".sock") }

// InUse reports whether a live process serves the UAPI socket of name. A
// socket file left by a killed process does not count.
func InUse(name string) bool {
	c, err := net.Dial("unix", SocketPath(name))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Create makes the TUN interface name with mtu, starts wireguard-go on it and
// listens on its UAPI socket. The device starts down; configure it (wgctrl or
// IpcSet) and call Up.
func Create(name string, mtu int, log *slog.Logger) (*Device, error) {
	return CreateWithInflight(name, mtu, log, inflightLimit(log))
}

// CreateWithInflight is Create with an explicit bound on the packets in
// flight per direction (0: none, stock wireguard-go).
func CreateWithInflight(name string, mtu int, log *slog.Logger, inLimit int) (*Device, error) {
	if len(name) == 0 || len(name) > 15 {
		return nil, fmt.Errorf("interface name %q: must be 1 to 15 characters", name)
	}
	if InUse(name) {
		return nil, fmt.Errorf("interface %s: a WireGuard device of that name already runs on this machine (%s)", name, SocketPath(name))
	}
	t, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN %s: %w", name, err)
	}
	if real, err := t.Name(); err == nil {
		name = real
	}
	uapiFile, err := ipc.UAPIOpen(name)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("open UAPI socket for %s: %w", name, err)
	}
	wgLog := &device.Logger{
		Verbosef: func(string, ...any) {},
		Errorf: func(format string, args ...any) {
			log.Warn(fmt.Sprintf(format, args...), "interface", name)
		},
	}
	var (
		devTUN tun.Device = t
		bind   conn.Bind  = conn.NewDefaultBind()
	)
	var lim *limits
	if inLimit > 0 {
		lim = newLimits(inLimit)
		devTUN, bind = &limitedTUN{Device: t, l: lim}, &limitedBind{Bind: bind, l: lim}
	}
	dev := device.NewDevice(devTUN, bind, wgLog)
	uapi, err := ipc.UAPIListen(name, uapiFile)
	if err != nil {
		dev.Close()
		uapiFile.Close()
		return nil, fmt.Errorf("listen on UAPI socket for %s: %w", name, err)
	}
	d := &Device{Name: name, Dev: dev, tun: t, uapi: uapi, done: make(chan struct{}), limits: lim, stopWatch: func() {}}
	if lim != nil {
		if d.stopWatch, err = d.watchRoutes(log); err != nil {
			uapi.Close()
			dev.Close()
			return nil, fmt.Errorf("interface %s: %w", name, err)
		}
	}
	go func() {
		defer close(d.done)
		for {
			c, err := uapi.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	return d, nil
}

// Inflight is what the in-flight bound of one direction saw.
type Inflight struct {
	Limit int // 0: no bound
	Held  int // packets held now
	Waits int // times reading waited for the bound
}

// Inflight reports the bound of the outgoing (TUN to UDP) and incoming
// (UDP to TUN) direction.
func (d *Device) Inflight() (out, in Inflight) {
	if d.limits == nil {
		return Inflight{}, Inflight{}
	}
	return d.limits.out.stats(), d.limits.in.stats()
}

// InflightEnv overrides DefaultInflight: packets each direction may hold
// ("0" for no bound, as stock wireguard-go). The benchmark's ablation rows
// use it.
const InflightEnv = "CLEARPATH_WG_INFLIGHT"

func inflightLimit(log *slog.Logger) int {
	v := envvar.Get(strings.TrimPrefix(InflightEnv, envvar.Prefix))
	if v == "" {
		return DefaultInflight
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		log.Warn("ignoring bad "+InflightEnv+" (want a packet count, 0 for no bound)", "value", v)
		return DefaultInflight
	}
	return n
}

// Up brings the WireGuard device up (the TUN link is set up separately).
func (d *Device) Up() error { return d.Dev.Up() }

// Close stops the device; the kernel removes the TUN link and every route on it.
func (d *Device) Close() {
	d.stopWatch()
	d.uapi.Close()
	<-d.done
	d.Dev.Close()
	os.Remove(SocketPath(d.Name))
}
