package gateway

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// TestLazyPeerSet drives the registered-peer set of a lazy network over a
// recorded device (fakeWG): registrations and store syncs do not touch the
// device, a handshake hook adds registered keys only, the trimmer takes
// idle ones off and keeps their figures, and a removed key never comes
// back.
func TestLazyPeerSet(t *testing.T) {
	f := newFakeNet(nil)
	f.devices["wgt"] = &wgtypes.Device{Name: "wgt"}
	now := time.Unix(1_800_000_000, 0)
	g := &Gateway{wg: fakeWG{f}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), networks: map[string]*network{}, now: func() time.Time { return now }}
	nw := &network{cfg: config.Network{Name: "eng", Interface: "wgt"}, peers: newPeerSet(true)}
	g.networks["eng"] = nw

	keys := make([]wgtypes.Key, 3)
	for i := range keys {
		k, _ := wgtypes.GeneratePrivateKey()
		keys[i] = k.PublicKey()
	}
	peer := func(i int) store.Peer {
		return store.Peer{ID: "p" + string(rune('0'+i)), Network: "eng", PublicKey: keys[i].String(),
			Addr: store.Allocation{V4: netip.AddrFrom4([4]byte{100, 64, 0, byte(2 + i)})}}
	}
	onDevice := func() map[wgtypes.Key]*wgtypes.Peer {
		d, _ := fakeWG{f}.Device("wgt")
		out := map[wgtypes.Key]*wgtypes.Peer{}
		for i := range d.Peers {
			out[d.Peers[i].PublicKey] = &d.Peers[i]
		}
		return out
	}
	traffic := func(k wgtypes.Key, rx int64) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := range f.devices["wgt"].Peers {
			if p := &f.devices["wgt"].Peers[i]; p.PublicKey == k {
				p.ReceiveBytes, p.LastHandshakeTime = rx, now
			}
		}
	}

	for i := 0; i < 2; i++ {
		if err := g.AddPeer(peer(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(onDevice()); n != 0 {
		t.Fatalf("registered peers went on a lazy device: %d", n)
	}
	if st, _ := g.Stats("eng"); len(st) != 2 {
		t.Fatalf("Stats lists %d peers, want the 2 registered", len(st))
	}

	g.lazyAdd(nw, keys[2]) // not registered
	g.lazyAdd(nw, keys[0])
	if d := onDevice(); len(d) != 1 || d[keys[0]] == nil || len(d[keys[0]].AllowedIPs) != 1 {
		t.Fatalf("after a registered and an unregistered handshake the device holds %v", d)
	}
	traffic(keys[0], 100)
	hs := now

	const idle = 10 * time.Second
	now = now.Add(idle - time.Second)
	if n, _ := g.trim(nw, idle); n != 0 {
		t.Fatalf("trimmed %d peers active %v ago", n, idle-time.Second)
	}
	now = now.Add(idle) // idle since the last trim saw the traffic
	if n, _ := g.trim(nw, idle); n != 1 || len(onDevice()) != 0 {
		t.Fatalf("trimmed %d, device %v; want the idle peer off", n, onDevice())
	}
	st, _ := g.Stats("eng")
	if s := st[keys[0].String()]; s.Rx != 100 || !s.LastHandshake.Equal(hs) {
		t.Fatalf("a trimmed peer's figures were lost: %+v", s)
	}

	// Back with its next handshake; its counters add up over stays.
	g.lazyAdd(nw, keys[0])
	traffic(keys[0], 50)
	st, _ = g.Stats("eng")
	if s := st[keys[0].String()]; s.Rx != 150 {
		t.Fatalf("Rx over two stays %d, want 150", s.Rx)
	}

	// Revoked: off the set and the device, and a handshake does not bring
	// it back.
	if err := g.RemovePeer("eng", keys[0].String()); err != nil {
		t.Fatal(err)
	}
	g.lazyAdd(nw, keys[0])
	if d := onDevice(); len(d) != 0 {
		t.Fatalf("a removed key came back on its handshake: %v", d)
	}
	if st, _ := g.Stats("eng"); len(st) != 1 {
		t.Fatalf("Stats after the removal lists %d peers, want 1", len(st))
	}

	// A registration through this gateway goes on the device at once.
	if err := g.activate(nw, keys[1]); err != nil || onDevice()[keys[1]] == nil {
		t.Fatalf("activate: %v, device %v", err, onDevice())
	}
}
