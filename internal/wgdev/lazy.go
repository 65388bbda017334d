package wgdev

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ratelimiter"
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
	rate  *ratelimiter.Ratelimiter // DH work per source address

	mu     sync.Mutex
	closed chan struct{} // closed by Close; waits for the hook end there

	initiations, badMAC1, rateLimited, opened, badStatic, hooked, hookTimeout atomic.Uint64
}

func newLazyBind(b conn.Bind) *lazyBind {
	l := &lazyBind{Bind: b, rate: new(ratelimiter.Ratelimiter), closed: make(chan struct{})}
	l.rate.Init()
	return l
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
		if src := ep.DstIP(); src.IsValid() && !b.rate.Allow(src) {
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
// SetLazy again after changing it. Initiations are opened at most 20 a
// second (burst 5) per source address (wireguard-go's ratelimiter), so a
// flood of initiations with a valid mac1 costs a bounded amount of DH work;
// those over the limit reach wireguard-go as they are.
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
