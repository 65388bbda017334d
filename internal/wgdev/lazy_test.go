package wgdev

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// lazyRig is a responder device with no peers behind a lazyBind, whose
// hook puts a registered key on it with IpcSet, and a real initiator.
type lazyRig struct {
	resp, init keyPair
	dev        *device.Device
	lb         *lazyBind
	respTUN    *tuntest.ChannelTUN
	initTUN    *tuntest.ChannelTUN
	registered sync.Map // wgtypes.Key -> bool
	hookCalls  atomic.Int64
}

func newLazyRig(t *testing.T) *lazyRig {
	r := &lazyRig{resp: newKeyPair(t), init: newKeyPair(t)}
	binds := bindtest.NewChannelBinds()
	r.respTUN = tuntest.NewChannelTUN()
	r.lb = newLazyBind(binds[1])
	r.dev = device.NewDevice(r.respTUN.TUN(), r.lb, quietLogger())
	t.Cleanup(r.dev.Close)
	if err := r.dev.IpcSet("private_key=" + hex.EncodeToString(r.resp.priv[:]) + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := r.lb.set(r.dev, r.resp.priv, r.resp.pub, func(k [32]byte) {
		r.hookCalls.Add(1)
		if _, ok := r.registered.Load(wgtypes.Key(k)); !ok {
			return
		}
		if err := r.dev.IpcSet(fmt.Sprintf("public_key=%s\nallowed_ip=10.0.0.2/32\n", hex.EncodeToString(k[:]))); err != nil {
			t.Errorf("hook IpcSet: %v", err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.dev.Up(); err != nil {
		t.Fatal(err)
	}
	r.initTUN = initiatorDevice(t, binds[0], r.init, r.resp.pub, nil)
	return r
}

var (
	respIP = netip.MustParseAddr("10.0.0.1")
	initIP = netip.MustParseAddr("10.0.0.2")
)

// ping sends one packet from the initiator and reports whether the
// responder's TUN got it within wait.
func (r *lazyRig) ping(wait time.Duration) bool {
	select {
	case r.initTUN.Outbound <- tuntest.Ping(respIP, initIP):
	case <-time.After(wait):
		return false
	}
	select {
	case <-r.respTUN.Inbound:
		return true
	case <-time.After(wait):
		return false
	}
}

func peerCount(t *testing.T, dev *device.Device) int {
	s, err := dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i+len("public_key=") <= len(s); i++ {
		if s[i:i+len("public_key=")] == "public_key=" {
			n++
		}
	}
	return n
}

// TestLazyFirstInitiationAnswered: the responder starts with no peers; the
// registered initiator's first initiation puts it on the device and is
// answered, so the first packet passes after one initiation, not after
// wireguard-go's 5 s retry.
func TestLazyFirstInitiationAnswered(t *testing.T) {
	r := newLazyRig(t)
	r.registered.Store(r.init.pub, true)
	start := time.Now()
	if !r.ping(10 * time.Second) {
		t.Fatal("no packet through the lazy device")
	}
	took := time.Since(start)
	st := r.lb.stats()
	t.Logf("first packet after %v; stats %+v", took, st)
	if st.Initiations != 1 || st.Hooked != 1 || st.Opened != 1 {
		t.Fatalf("want exactly one initiation, opened and hooked: %+v (a retry means the first was dropped)", st)
	}
	if n := peerCount(t, r.dev); n != 1 {
		t.Fatalf("%d peers on the device, want 1", n)
	}
	// Once on the device, further traffic does not call the hook.
	for i := 0; i < 5; i++ {
		if !r.ping(5 * time.Second) {
			t.Fatal("traffic stopped")
		}
	}
	if r.hookCalls.Load() != 1 {
		t.Fatalf("hook called %d times, want 1", r.hookCalls.Load())
	}
}

// TestLazyUnregisteredKeyAddsNothing: an initiation from a key the hook
// does not know leaves the device as it was and passes no traffic.
func TestLazyUnregisteredKeyAddsNothing(t *testing.T) {
	r := newLazyRig(t)
	if r.ping(1500 * time.Millisecond) {
		t.Fatal("a packet from an unregistered key passed")
	}
	if n := peerCount(t, r.dev); n != 0 {
		t.Fatalf("%d peers on the device after an unregistered initiation, want 0", n)
	}
	if st := r.lb.stats(); st.Hooked < 1 {
		t.Fatalf("hook not asked: %+v", st)
	}
}

// TestLazyFloodBoundsDH floods the responder with initiations that carry a
// valid mac1 (anyone who knows the device's public key can make them) and
// a forged body, from one source: the DH work stays within the per-source
// limit, and the real initiator still gets on once the flood ends.
func TestLazyFloodBoundsDH(t *testing.T) {
	binds := bindtest.NewChannelBinds()
	resp := newKeyPair(t)
	lb := newLazyBind(binds[1])
	tn := tuntest.NewChannelTUN()
	dev := device.NewDevice(tn.TUN(), lb, quietLogger())
	t.Cleanup(dev.Close)
	dev.IpcSet("private_key=" + hex.EncodeToString(resp.priv[:]) + "\n")
	var hooks atomic.Int64
	lb.set(dev, resp.priv, resp.pub, func([32]byte) { hooks.Add(1) })
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	r, _ := NewResponder(resp.priv, resp.pub)
	real := realInitiation(t, newKeyPair(t), resp.pub)
	const flood = 3000
	start := time.Now()
	for i := 0; i < flood; i++ {
		m := append([]byte(nil), real...)
		m[initEphemeral+i%32] ^= byte(i)
		m[initStatic] ^= 0xff
		resealMAC1(r, m)
		if err := binds[0].Send([][]byte{m}, bindtest.ChannelEndpoint(1)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for lb.stats().Initiations < flood && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	st := lb.stats()
	t.Logf("%d initiations in %v: %+v", flood, elapsed, st)
	if st.Initiations != flood {
		t.Fatalf("saw %d of %d initiations", st.Initiations, flood)
	}
	// A burst, then LazyDHPerSource a second, plus slack.
	if limit := uint64(LazyDHPerSource + LazyDHPerSource*elapsed.Seconds() + 5); st.Opened > limit {
		t.Fatalf("DH done %d times for %d initiations in %v, want at most %d", st.Opened, flood, elapsed, limit)
	}
	if st.RateLimited == 0 || hooks.Load() != 0 {
		t.Fatalf("flood not limited or forged bodies reached the hook: %+v hooks %d", st, hooks.Load())
	}
	// Once the flood stops the limiter refills: a real initiation from the
	// same source reaches the hook.
	time.Sleep(time.Second)
	binds[0].Send([][]byte{real}, bindtest.ChannelEndpoint(1))
	for hooks.Load() == 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if hooks.Load() != 1 {
		t.Fatalf("the real initiation after the flood did not reach the hook: %+v", lb.stats())
	}
}

// TestLazyHookCannotDeadlock runs traffic through the lazy device while its
// hook adds and removes peers with IpcSet, then closes the device while a
// hook waits for wireguard-go's IPC lock: everything must return.
func TestLazyHookCannotDeadlock(t *testing.T) {
	r := newLazyRig(t)
	r.registered.Store(r.init.pub, true)
	if !r.ping(10 * time.Second) {
		t.Fatal("no first packet")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // churn other peers through IPC while traffic flows
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := newKeyPair(t).pub
			r.dev.IpcSet(fmt.Sprintf("public_key=%s\nallowed_ip=10.1.%d.%d/32\n", hex.EncodeToString(k[:]), i/250%250, i%250))
			r.dev.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", hex.EncodeToString(k[:])))
		}
	}()
	for i := 0; i < 200; i++ {
		if !r.ping(5 * time.Second) {
			t.Fatalf("packet %d lost under IPC churn", i)
		}
	}
	close(stop)
	wg.Wait()

	// A hook blocked on IPC while the device closes: the stranger's
	// initiation arrives, the hook waits until Close holds the IPC lock
	// (which then waits for the receive routines) and only then calls IpcSet.
	binds := bindtest.NewChannelBinds()
	resp := newKeyPair(t)
	lb := newLazyBind(binds[1])
	tn := tuntest.NewChannelTUN()
	dev := device.NewDevice(tn.TUN(), lb, quietLogger())
	dev.IpcSet("private_key=" + hex.EncodeToString(resp.priv[:]) + "\n")
	inHook, closing := make(chan struct{}), make(chan struct{})
	lb.set(dev, resp.priv, resp.pub, func(k [32]byte) {
		close(inHook)
		<-closing
		time.Sleep(100 * time.Millisecond) // let Close take the IPC lock
		dev.IpcSet(fmt.Sprintf("public_key=%s\n", hex.EncodeToString(k[:])))
	})
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	binds[0].Send([][]byte{realInitiation(t, newKeyPair(t), resp.pub)}, bindtest.ChannelEndpoint(1))
	<-inHook
	done := make(chan struct{})
	go func() { close(closing); dev.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(LazyHookTimeout / 2):
		// Without the bind's close signal the receive routine would hold
		// Close until LazyHookTimeout, or forever without the timeout.
		<-done
		t.Fatal("device Close waited for a hook blocked on IPC")
	}
}

// TestDHLimit: one IPv6 /64 is one source, and many sources share a cap.
func TestDHLimit(t *testing.T) {
	d := newDHLimit()
	n := 0
	for i := 0; i < 3*LazyDHPerSource; i++ {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)})
		if d.allow(a) {
			n++
		}
	}
	if n > LazyDHPerSource+1 {
		t.Errorf("one /64 got %d DH operations at once, want at most %d", n, LazyDHPerSource+1)
	}
	d, n = newDHLimit(), 0
	for i := 0; i < 2*LazyDHTotal; i++ {
		if d.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})) {
			n++
		}
	}
	if n > LazyDHTotal+LazyDHTotal/10 {
		t.Errorf("%d sources got %d DH operations at once, want about %d", 2*LazyDHTotal, n, LazyDHTotal)
	}
	// A flood from ever-new (spoofed) sources: the table of sources stays
	// bounded, and the limit in all still holds.
	d, n = newDHLimit(), 0
	start := time.Now()
	for i := 0; i < 4*lazyDHSources; i++ {
		if d.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})) {
			n++
		}
	}
	if len(d.per) > lazyDHSources {
		t.Errorf("%d sources remembered after a spoofed flood, want at most %d", len(d.per), lazyDHSources)
	}
	// The burst, plus what the limit refills while the loop runs.
	if most := LazyDHTotal + int(time.Since(start).Seconds()*LazyDHTotal) + 10; n > most {
		t.Errorf("a spoofed flood got %d DH operations, want at most %d", n, most)
	}
}
