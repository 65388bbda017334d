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
	// lazy sees every received packet; SetLazy turns it on (lazy.go).
	lazy *lazyBind
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
	return CreateWithInflight(name, mtu, log, InflightLimit(log, DefaultInflight))
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
		devTUN tun.Device = newStateTUN(t)
		bind   conn.Bind  = conn.NewDefaultBind()
	)
	var lim *limits
	if inLimit > 0 {
		lim = newLimits(inLimit)
		devTUN, bind = &limitedTUN{Device: devTUN, l: lim}, &limitedBind{Bind: bind, l: lim}
	}
	lazy := newLazyBind(bind)
	dev := device.NewDevice(devTUN, lazy, wgLog)
	uapi, err := ipc.UAPIListen(name, uapiFile)
	if err != nil {
		dev.Close()
		uapiFile.Close()
		return nil, fmt.Errorf("listen on UAPI socket for %s: %w", name, err)
	}
	d := &Device{Name: name, Dev: dev, tun: t, uapi: uapi, done: make(chan struct{}), limits: lim, stopWatch: func() {}, lazy: lazy}
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

// InflightLimit is the bound InflightEnv sets, or def when it is unset or
// bad (the bad value is logged).
func InflightLimit(log *slog.Logger, def int) int {
	v := envvar.Get(strings.TrimPrefix(InflightEnv, envvar.Prefix))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		log.Warn("ignoring bad "+InflightEnv+" (want a packet count, 0 for no bound)", "value", v)
		return def
	}
	return n
}

// Up brings the WireGuard device up (the TUN link is set up separately): it
// opens the UDP sockets on the configured listen port and starts the peers.
// Only Up and Close change the device's state; the link's state does not
// (stateTUN).
func (d *Device) Up() error { return d.Dev.Up() }

// stateTUN hides the TUN link's up and down events from wireguard-go, which
// would otherwise bring the device up or down on its own goroutine:
//   - on this kernel (6.18) a new, down TUN reports itself up at creation
//     (wireguard-go's status probe, a zero-length write, fails with EINVAL
//     as on an up link), so the device came up and bound a random port
//     before it was configured;
//   - when that Up (or one after the link was set up) found the configured
//     listen port taken, wireguard-go reset the port to 0, and the caller's
//     own Up then bound a random port and succeeded: a gateway whose port was
//     taken came up serving on a port no client uses, instead of failing
//     (internal/wgdev TestBusyPortFailsUp, e2e TestBadConfigAndNoHalfStart).
//
// The callers bring the device up once it is configured and close it to
// stop it, so the link's state carries nothing they need. MTU changes still
// pass through.
type stateTUN struct {
	tun.Device
	events chan tun.Event
}

func newStateTUN(t tun.Device) *stateTUN {
	s := &stateTUN{Device: t, events: make(chan tun.Event, 1)}
	go func() {
		defer close(s.events) // after the TUN closed its own
		for ev := range t.Events() {
			if ev &^= tun.EventUp | tun.EventDown; ev != 0 {
				s.events <- ev
			}
		}
	}()
	return s
}

func (s *stateTUN) Events() <-chan tun.Event { return s.events }

// Close stops the device; the kernel removes the TUN link and every route on it.
func (d *Device) Close() {
	d.stopWatch()
	d.uapi.Close()
	<-d.done
	d.Dev.Close()
	os.Remove(SocketPath(d.Name))
}
