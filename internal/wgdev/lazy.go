package wgdev

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
)

// Why this file exists: each wireguard-go peer costs about 40 KiB whether
// it is used or not (two 1024-slot queues, a staging queue, timers, two
// goroutines), and a gateway has every registered device of a company as
// a peer while most are offline. A lazy device holds only active peers:
// the caller keeps the registered ones in memory and puts a peer on the
// device when its handshake initiation arrives. lazyBind sits between the
// UDP sockets and wireguard-go's receive routines: for an initiation from
// a key that is not on the device it calls the caller's hook before
// wireguard-go sees the packet, so the first initiation is answered (no
// 5 s REKEY_TIMEOUT retry for the user).

// PeerHook is called with the static key a handshake initiation claims to
// come from, when that key is not on the device. It may put the peer on
// the device (IpcSet or wgctrl over UAPI); the initiation reaches
// wireguard-go after it returns. The key is a claim until wireguard-go
// completes the handshake, which needs the key's private half.
type PeerHook func(key [32]byte)

// LazyHookTimeout is how long a received batch waits for the hook. A hook
// that takes longer (a device being closed, a stuck caller) lets the
// packet through to wireguard-go, which drops it if the peer is still
// missing; the client retries its handshake.
const LazyHookTimeout = 2 * time.Second

// LazyStats counts what lazyBind did with the initiations it saw.
type LazyStats struct {
	Initiations uint64 // well-formed initiations seen
	BadMAC1     uint64 // refused by mac1 (not for this device): no DH
	RateLimited uint64 // over the per-source limit: no DH, passed on
	Opened      uint64 // DH work done (mac1 good, within the limit)
	BadStatic   uint64 // DH done but the static key did not open
	Hooked      uint64 // hook calls (key not on the device)
	HookTimeout uint64 // hook calls that outlived LazyHookTimeout
}

type lazyState struct {
	resp     *Responder
	hook     PeerHook
	onDevice func(key [32]byte) bool
}

type lazyBind struct {
	conn.Bind
	state atomic.Pointer[lazyState]
	rate  *dhLimit // DH work per source address and in all

	mu     sync.Mutex
	closed chan struct{} // closed by Close; waits for the hook end there

	initiations, badMAC1, rateLimited, opened, badStatic, hooked, hookTimeout atomic.Uint64
}

func newLazyBind(b conn.Bind) *lazyBind {
	return &lazyBind{Bind: b, rate: newDHLimit(), closed: make(chan struct{})}
}

func (b *lazyBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	b.mu.Lock()
	closed := make(chan struct{})
	b.closed = closed
	b.mu.Unlock()
	wrapped := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		wrapped[i] = func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(bufs, sizes, eps)
			if st := b.state.Load(); st != nil {
				for j := 0; j < n; j++ {
					b.inspect(st, bufs[j][:sizes[j]], eps[j], closed)
				}
			}
			return n, err
		}
	}
	return wrapped, actual, nil
}

// Close closes the sockets and ends any wait for the hook: wireguard-go
// closes the bind while holding its IPC lock and then waits for the
// receive routines, so a hook blocked on that lock must not hold them.
func (b *lazyBind) Close() error {
	b.mu.Lock()
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	b.mu.Unlock()
	return b.Bind.Close()
}

func (b *lazyBind) inspect(st *lazyState, msg []byte, ep conn.Endpoint, closed <-chan struct{}) {
	if !IsInitiation(msg) {
		return
	}
	b.initiations.Add(1)
	if !st.resp.CheckMAC1(msg) {
		b.badMAC1.Add(1)
		return
	}
	if ep != nil {
		if !b.rate.allow(ep.DstIP()) {
			b.rateLimited.Add(1)
			return
		}
	}
	b.opened.Add(1)
	key, err := st.resp.InitiatorKey(msg)
	if err != nil {
		b.badStatic.Add(1)
		return
	}
	if st.onDevice(key) {
		return
	}
	b.hooked.Add(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.hook(key)
	}()
	t := time.NewTimer(LazyHookTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-closed:
	case <-t.C:
		b.hookTimeout.Add(1)
	}
}

func (b *lazyBind) stats() LazyStats {
	return LazyStats{
		Initiations: b.initiations.Load(), BadMAC1: b.badMAC1.Load(), RateLimited: b.rateLimited.Load(),
		Opened: b.opened.Load(), BadStatic: b.badStatic.Load(), Hooked: b.hooked.Load(), HookTimeout: b.hookTimeout.Load(),
	}
}

// SetLazy makes d a lazy device: a handshake initiation to the static key
// pair (priv, pub) from a key that is not on the device calls hook first.
// Set the device's private key to priv as well (wgctrl or IpcSet); call
// SetLazy again after changing it. Initiations are opened at most
// LazyDHPerSource a second per source address (an IPv6 /64) and
// LazyDHTotal in all, so a flood of initiations with a valid mac1 costs a
// bounded amount of DH work; those over the limit reach wireguard-go as
// they are (a peer not on the device then waits for its 5 s retry).
func (d *Device) SetLazy(priv, pub [32]byte, hook PeerHook) error {
	return d.lazy.set(d.Dev, priv, pub, hook)
}

func (b *lazyBind) set(dev *device.Device, priv, pub [32]byte, hook PeerHook) error {
	r, err := NewResponder(priv, pub)
	if err != nil {
		return err
	}
	b.state.Store(&lazyState{resp: r, hook: hook, onDevice: func(k [32]byte) bool {
		return dev.LookupPeer(device.NoisePublicKey(k)) != nil
	}})
	return nil
}

// LazyStats reports what the lazy bind did so far.
func (d *Device) LazyStats() LazyStats { return d.lazy.stats() }

// Bounds of the DH work on initiations (one X25519, about 40 µs here). Per
// source they leave room for an office behind one NAT address whose
// clients all handshake again after a gateway restart (wireguard-go's own
// ratelimiter, 20 a second with a burst of 5, made 200 such clients wait
// for several 5 s retries); in all they cap a flood from many addresses at
// a few percent of a core.
const (
	LazyDHPerSource = 50   // a second, and burst, per address or IPv6 /64
	LazyDHTotal     = 1000 // a second, and burst, in all
	// lazyDHSources bounds the sources remembered at once: a flood with
	// spoofed, ever-new source addresses (a valid mac1 needs only the
	// gateway's public key) must not grow the table without end. Past it
	// a new source has only the limit in all.
	lazyDHSources = 1 << 16
)

type dhLimit struct {
	mu    sync.Mutex
	all   *rate.Limiter
	per   map[netip.Addr]*srcLimit
	sweep time.Time
}

type srcLimit struct {
	lim  *rate.Limiter
	seen time.Time
}

func newDHLimit() *dhLimit {
	return &dhLimit{all: rate.NewLimiter(LazyDHTotal, LazyDHTotal), per: map[netip.Addr]*srcLimit{}, sweep: time.Now()}
}

// allow reports whether an initiation from src may cost a DH now.
func (d *dhLimit) allow(src netip.Addr) bool {
	src = src.Unmap()
	if src.Is6() {
		p, _ := src.Prefix(64)
		src = p.Addr()
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.sweep) > 10*time.Second { // forget quiet sources
		for a, s := range d.per {
			if now.Sub(s.seen) > 10*time.Second {
				delete(d.per, a)
			}
		}
		d.sweep = now
	}
	s := d.per[src]
	if s == nil {
		if len(d.per) >= lazyDHSources {
			return d.all.AllowN(now, 1)
		}
		s = &srcLimit{lim: rate.NewLimiter(LazyDHPerSource, LazyDHPerSource)}
		d.per[src] = s
	}
	s.seen = now
	return s.lim.AllowN(now, 1) && d.all.AllowN(now, 1)
}
