// Package tunnel brings up the client's side of the WireGuard tunnel: a
// wireguard-go device on a TUN interface, configured over its UAPI, with the
// tunnel addresses on the link. Routes are not its business: the agent adds
// them through the routes engine so every change is journaled.
package tunnel

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
)

// Config is what the tunnel needs.
type Config struct {
	Interface  string
	MTU        int
	PrivateKey wgtypes.Key
	// FwMark marks the WireGuard socket's packets so policy routing sends
	// them outside the tunnel.
	FwMark  uint32
	PeerKey wgtypes.Key
	// PresharedKey is the session's WireGuard preshared key (zero: none).
	PresharedKey wgtypes.Key
	Endpoint     netip.AddrPort
	AllowedIPs   []netip.Prefix
	Addresses    []netip.Prefix
	Keepalive    int
}

// Tunnel is a running client tunnel.
type Tunnel struct {
	Name string
	// MTU is the link's MTU (Config.MTU, or 1420 by default; SetMTU).
	MTU   int
	wg    *device.Device
	close func() // stops the device (wgdev's Close, or UpOver's)
	// Steps is how long each step of Up took ("tun", "wireguard",
	// "link"), for the agent's "connect phases" log line.
	Steps []Step
}

// Step is one timed step of bringing a tunnel up.
type Step struct {
	Name string
	Took time.Duration
}

// stepClock times consecutive steps.
type stepClock struct {
	last  time.Time
	steps []Step
}

func (c *stepClock) mark(name string) {
	now := time.Now()
	c.steps = append(c.steps, Step{Name: name, Took: now.Sub(c.last)})
	c.last = now
}

// Up creates and configures the tunnel. On error nothing is left behind.
func Up(cfg Config, log *slog.Logger) (t *Tunnel, err error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	clk := stepClock{last: time.Now()}
	dev, err := wgdev.Create(cfg.Interface, cfg.MTU, log)
	if err != nil {
		return nil, err
	}
	clk.mark("tun")
	t = &Tunnel{Name: dev.Name, MTU: cfg.MTU, wg: dev.Dev, close: dev.Close}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if err := t.configure(cfg); err != nil {
		return nil, err
	}
	clk.mark("wireguard")
	if err := configureLink(t.Name, cfg.Addresses); err != nil {
		return nil, err
	}
	clk.mark("link")
	t.Steps = clk.steps
	return t, nil
}

// configure hands cfg to WireGuard and brings the device up.
func (t *Tunnel) configure(cfg Config) error {
	if err := t.wg.IpcSet(uapiConfig(cfg)); err != nil {
		return fmt.Errorf("configure WireGuard on %s: %w", t.Name, err)
	}
	if err := t.wg.Up(); err != nil {
		return fmt.Errorf("bring WireGuard up on %s: %w", t.Name, err)
	}
	return nil
}

func uapiConfig(cfg Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", hex.EncodeToString(cfg.PrivateKey[:]))
	fmt.Fprintf(&b, "fwmark=%d\n", cfg.FwMark)
	b.WriteString("replace_peers=true\n")
	fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(cfg.PeerKey[:]))
	fmt.Fprintf(&b, "preshared_key=%s\n", hex.EncodeToString(cfg.PresharedKey[:]))
	fmt.Fprintf(&b, "endpoint=%s\n", cfg.Endpoint)
	fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", cfg.Keepalive)
	b.WriteString("replace_allowed_ips=true\n")
	for _, p := range cfg.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", p)
	}
	return b.String()
}

// SetMTU changes the tunnel link's MTU (`vpn up --mtu auto` lowering it
// to the measured path MTU).
func (t *Tunnel) SetMTU(mtu int) error {
	if err := setMTU(t.Name, mtu); err != nil {
		return err
	}
	t.MTU = mtu
	return nil
}

// UpdateSession changes the tunnel's credentials in place: the private key
// (when it was rotated) and the gateway peer's preshared key. The link, its
// addresses and routes stay; the current WireGuard session keeps carrying
// packets until the next handshake, which uses the new keys.
func (t *Tunnel) UpdateSession(priv, peer, psk wgtypes.Key) error {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", hex.EncodeToString(priv[:]))
	fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(peer[:]))
	b.WriteString("update_only=true\n")
	fmt.Fprintf(&b, "preshared_key=%s\n", hex.EncodeToString(psk[:]))
	if err := t.wg.IpcSet(b.String()); err != nil {
		return fmt.Errorf("update WireGuard session on %s: %w", t.Name, err)
	}
	return nil
}

// Stats are the peer's counters.
type Stats struct {
	LastHandshake time.Time
	RxBytes       int64
	TxBytes       int64
}

// Stats reads the gateway peer's handshake time and byte counters.
func (t *Tunnel) Stats() (Stats, error) {
	s, err := t.wg.IpcGet()
	if err != nil {
		return Stats{}, fmt.Errorf("read WireGuard state of %s: %w", t.Name, err)
	}
	return parseStats(s), nil
}

func parseStats(uapi string) Stats {
	var st Stats
	var sec, nsec int64
	sc := bufio.NewScanner(strings.NewReader(uapi))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "last_handshake_time_sec":
			sec = n
		case "last_handshake_time_nsec":
			nsec = n
		case "rx_bytes":
			st.RxBytes += n
		case "tx_bytes":
			st.TxBytes += n
		}
	}
	if sec > 0 {
		st.LastHandshake = time.Unix(sec, nsec)
	}
	return st
}

// Close stops wireguard-go; the kernel removes the link and its routes.
func (t *Tunnel) Close() {
	if t.close != nil {
		t.close()
		t.close = nil
	}
}

// ResolveEndpoint turns host:port into an address, resolving a name. check,
// when set, vets every candidate: the first address it accepts is used, and
// when it accepts none the error names what the name resolved to.
func ResolveEndpoint(ctx context.Context, host string, port uint16, check func(netip.Addr) error) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if check != nil {
			if err := check(a); err != nil {
				return netip.AddrPort{}, fmt.Errorf("endpoint %s: %w", host, err)
			}
		}
		return netip.AddrPortFrom(a, port), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve endpoint %s: %v", host, err)
	}
	var refused []string
	for _, a := range addrs {
		a = a.Unmap()
		if check != nil {
			if err := check(a); err != nil {
				refused = append(refused, err.Error())
				continue
			}
		}
		return netip.AddrPortFrom(a, port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("endpoint %s resolves to no usable address: %s", host, strings.Join(refused, "; "))
}

// Pending is a tunnel whose device runs (TUN link, wireguard-go with its
// key and fwmark, UDP sockets bound) but has no peer, addresses or link
// state yet: the agent makes it while the registration is in flight and
// finishes it with Up once the gateway answered.
type Pending struct {
	t   *Tunnel
	clk stepClock
}

// Prepare makes the device of a tunnel called name (mtu 0: 1420) with
// the device key priv and fwmark. On error nothing is left behind.
func Prepare(name string, mtu int, priv wgtypes.Key, fwmark uint32, log *slog.Logger) (*Pending, error) {
	if mtu == 0 {
		mtu = 1420
	}
	clk := stepClock{last: time.Now()}
	dev, err := wgdev.Create(name, mtu, log)
	if err != nil {
		return nil, err
	}
	clk.mark("tun")
	t := &Tunnel{Name: dev.Name, MTU: mtu, wg: dev.Dev, close: dev.Close}
	set := fmt.Sprintf("private_key=%s\nfwmark=%d\n", hex.EncodeToString(priv[:]), fwmark)
	if err := t.wg.IpcSet(set); err != nil {
		t.Close()
		return nil, fmt.Errorf("configure WireGuard on %s: %w", t.Name, err)
	}
	if err := t.wg.Up(); err != nil {
		t.Close()
		return nil, fmt.Errorf("bring WireGuard up on %s: %w", t.Name, err)
	}
	clk.mark("wireguard_start")
	return &Pending{t: t, clk: clk}, nil
}

// Name is the device's name.
func (p *Pending) Name() string { return p.t.Name }

// Up finishes the tunnel with cfg (its Interface is ignored): the MTU if
// it differs, the peer (a persistent keepalive starts the handshake at
// once), the addresses, the link up. On error the device is closed.
func (p *Pending) Up(cfg Config) (t *Tunnel, err error) {
	t = p.t
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	p.clk.last = time.Now()
	if cfg.MTU != 0 && cfg.MTU != t.MTU {
		if err := t.SetMTU(cfg.MTU); err != nil {
			return nil, err
		}
	}
	if err := t.configure(cfg); err != nil {
		return nil, err
	}
	p.clk.mark("wireguard")
	if err := configureLink(t.Name, cfg.Addresses); err != nil {
		return nil, err
	}
	p.clk.mark("link")
	t.Steps = p.clk.steps
	return t, nil
}

// Close stops the device of a tunnel that was never finished.
func (p *Pending) Close() { p.t.Close() }
