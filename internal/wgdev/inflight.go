package wgdev

import (
	"sync"
	"time"
	"unsafe"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// Why this file exists: on Linux, wireguard-go's queues hold 1024 batches of
// up to 128 packets each and its buffer pools are unbounded
// (device.PreallocatedBuffersPerPool is a constant 0 there), and every packet
// sits in its own 64 KiB buffer. Under a bulk TCP transfer the reader side
// outruns encryption or decryption, the queues absorb the sender's whole
// congestion window, and the process grows to hundreds of MiB (about 400
// MiB measured, see bench/). Bounding the packets in flight between reading
// and writing them gives the backpressure the pools would give on iOS: the
// TUN (or UDP socket) queue fills instead, TCP sees it and slows down, and
// the queueing delay under load drops too.

// DefaultInflight is how many packets each direction of a device may hold
// at once: far above the bandwidth-delay product of a userspace tunnel
// (2.5 Gbit/s over a 1 ms RTT is about 220 packets of 1420 bytes) yet a
// bound of about 16 MiB of buffers per direction.
const DefaultInflight = 256

// staleAfter is how long a packet may be held before it no longer counts:
// packets dropped inside wireguard-go (no session yet, a full staging
// queue, handshake messages) are never written, so their entries would
// otherwise leak.
const staleAfter = 100 * time.Millisecond

// inflight counts the packet buffers of one direction between the read that
// filled them and the write that emptied them. Buffers are recognised by
// address: wireguard-go reads a packet into an element's buffer and later
// writes that same buffer (from its start) out.
type inflight struct {
	limit int
	mu    sync.Mutex
	held  map[uintptr]time.Time
	// wake is closed when a release brings held below limit; readers
	// waiting (one per UDP socket, one for the TUN) share it.
	wake chan struct{}
	// waits counts how often a reader had to wait (for tests and tuning).
	waits int
}

func newInflight(limit int) *inflight {
	return &inflight{limit: limit, held: make(map[uintptr]time.Time, 2*limit)}
}

func key(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// wait blocks while limit packets are held.
func (f *inflight) wait() {
	f.mu.Lock()
	for len(f.held) >= f.limit {
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		f.waits++
		f.mu.Unlock()
		t := time.NewTimer(staleAfter)
		select {
		case <-wake:
			t.Stop()
		case <-t.C:
			f.expire()
		}
		f.mu.Lock()
	}
	f.mu.Unlock()
}

// take records the buffers a read just filled.
func (f *inflight) take(bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	now := time.Now()
	f.mu.Lock()
	for _, b := range bufs {
		f.held[key(b)] = now
	}
	f.mu.Unlock()
}

// release forgets the buffers about to be written out. It runs before the
// write, as the write may re-slice bufs.
func (f *inflight) release(bufs [][]byte) {
	f.mu.Lock()
	for _, b := range bufs {
		delete(f.held, key(b))
	}
	if f.wake != nil && len(f.held) < f.limit {
		close(f.wake)
		f.wake = nil
	}
	f.mu.Unlock()
}

func (f *inflight) expire() {
	cutoff := time.Now().Add(-staleAfter)
	f.mu.Lock()
	for k, t := range f.held {
		if t.Before(cutoff) {
			delete(f.held, k)
		}
	}
	if f.wake != nil && len(f.held) < f.limit {
		close(f.wake)
		f.wake = nil
	}
	f.mu.Unlock()
}

func (f *inflight) stats() Inflight {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Inflight{Limit: f.limit, Held: len(f.held), Waits: f.waits}
}

// limits are the two directions of one device: out is TUN read to UDP send,
// in is UDP receive to TUN write.
type limits struct{ out, in *inflight }

func newLimits(perDirection int) *limits {
	return &limits{out: newInflight(perDirection), in: newInflight(perDirection)}
}

// limitedTUN holds back TUN reads while too many outgoing packets are in
// flight and releases incoming ones as they are written.
type limitedTUN struct {
	tun.Device
	l *limits
}

func (t *limitedTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t.l.out.wait()
	n, err := t.Device.Read(bufs, sizes, offset)
	if n > 0 {
		t.l.out.take(bufs[:n])
	}
	return n, err
}

func (t *limitedTUN) Write(bufs [][]byte, offset int) (int, error) {
	t.l.in.release(bufs)
	return t.Device.Write(bufs, offset)
}

// limitedBind holds back UDP receives while too many incoming packets are in
// flight and releases outgoing ones as they are sent.
type limitedBind struct {
	conn.Bind
	l *limits
}

func (b *limitedBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	wrapped := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		wrapped[i] = func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			b.l.in.wait()
			n, err := fn(bufs, sizes, eps)
			if n > 0 {
				b.l.in.take(bufs[:n])
			}
			return n, err
		}
	}
	return wrapped, actual, nil
}

func (b *limitedBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.l.out.release(bufs)
	return b.Bind.Send(bufs, ep)
}
