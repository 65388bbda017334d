package wgdev

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// keyPair is a WireGuard static key pair.
type keyPair struct{ priv, pub wgtypes.Key }

func newKeyPair(t testing.TB) keyPair {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{k, k.PublicKey()}
}

func quietLogger() *device.Logger {
	return &device.Logger{Verbosef: func(string, ...any) {}, Errorf: func(string, ...any) {}}
}

// initiatorDevice starts a real wireguard-go device on a channel TUN with
// key me and one peer (key them, reached at 127.0.0.1:1 over bind, the
// first of a bindtest pair), and returns its TUN to push packets into.
func initiatorDevice(t testing.TB, bind conn.Bind, me keyPair, them wgtypes.Key, psk *wgtypes.Key) *tuntest.ChannelTUN {
	t.Helper()
	tn := tuntest.NewChannelTUN()
	dev := device.NewDevice(tn.TUN(), bind, quietLogger())
	t.Cleanup(dev.Close)
	cfg := fmt.Sprintf("private_key=%s\npublic_key=%s\nendpoint=127.0.0.1:1\nallowed_ip=10.0.0.1/32\n",
		hex.EncodeToString(me.priv[:]), hex.EncodeToString(them[:]))
	if psk != nil {
		cfg += "preshared_key=" + hex.EncodeToString(psk[:]) + "\n"
	}
	if err := dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	return tn
}

// realInitiation makes a real wireguard-go device with key init send a
// handshake initiation to a responder with key resp, and returns its bytes.
func realInitiation(t testing.TB, init keyPair, resp wgtypes.Key) []byte {
	t.Helper()
	binds := bindtest.NewChannelBinds()
	tn := initiatorDevice(t, binds[0], init, resp, nil)
	fns, _, err := binds[1].Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { binds[1].Close() })
	go func() {
		select {
		case tn.Outbound <- tuntest.Ping(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")):
		case <-time.After(5 * time.Second):
		}
	}()
	bufs, sizes, eps := [][]byte{make([]byte, 2048)}, []int{0}, []conn.Endpoint{nil}
	for {
		n, err := fns[0](bufs, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 && IsInitiation(bufs[0][:sizes[0]]) {
			return append([]byte(nil), bufs[0][:sizes[0]]...)
		}
	}
}

func responder(t testing.TB, k keyPair) *Responder {
	t.Helper()
	r, err := NewResponder(k.priv, k.pub)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInitiatorKeyOfRealInitiation(t *testing.T) {
	init, resp := newKeyPair(t), newKeyPair(t)
	msg := realInitiation(t, init, resp.pub)
	got, err := responder(t, resp).InitiatorKey(msg)
	if err != nil {
		t.Fatalf("InitiatorKey of a real initiation: %v", err)
	}
	if wgtypes.Key(got) != init.pub {
		t.Fatalf("initiator key %s, want %s", wgtypes.Key(got), init.pub)
	}

	// The same packet sent to another device: mac1 refuses it before any DH.
	other := newKeyPair(t)
	if _, err := responder(t, other).InitiatorKey(msg); !errors.Is(err, ErrBadMAC1) {
		t.Fatalf("initiation for another device: err %v, want ErrBadMAC1", err)
	}

	// A right mac1 over a forged body (recomputed by someone who knows the
	// responder's public key, as anyone may): the static key does not open.
	r := responder(t, resp)
	for _, off := range []int{initEphemeral, initStatic, initStatic + 40} {
		forged := append([]byte(nil), msg...)
		forged[off] ^= 0x55
		resealMAC1(r, forged)
		if !r.CheckMAC1(forged) {
			t.Fatal("resealed mac1 does not check")
		}
		if k, err := r.InitiatorKey(forged); !errors.Is(err, ErrBadStatic) {
			t.Fatalf("forged byte %d: key %x, err %v, want ErrBadStatic", off, k, err)
		}
	}
	// A forged timestamp is not this function's business (wireguard-go
	// refuses it); the key still reads, mac1 resealed.
	ts := append([]byte(nil), msg...)
	ts[initTimestamp] ^= 1
	resealMAC1(r, ts)
	if k, err := r.InitiatorKey(ts); err != nil || wgtypes.Key(k) != init.pub {
		t.Fatalf("forged timestamp: key %x err %v", k, err)
	}

	// Truncated, padded, wrong type.
	for name, m := range map[string][]byte{
		"truncated": msg[:InitiationSize-1],
		"padded":    append(append([]byte(nil), msg...), 0),
		"empty":     nil,
		"type 2":    append([]byte{2}, msg[1:]...),
		"type 1<<8": append([]byte{1, 1}, msg[2:]...),
	} {
		if _, err := r.InitiatorKey(m); !errors.Is(err, ErrNotInitiation) {
			t.Errorf("%s: err %v, want ErrNotInitiation", name, err)
		}
	}
}

func TestNewResponderRefusesMismatchedKeys(t *testing.T) {
	a, b := newKeyPair(t), newKeyPair(t)
	if _, err := NewResponder(a.priv, b.pub); err == nil {
		t.Fatal("NewResponder accepted a public key of another private key")
	}
}

func resealMAC1(r *Responder, msg []byte) {
	mac := newMAC1(r)
	mac.Write(msg[:initMAC1])
	copy(msg[initMAC1:initMAC2], mac.Sum(nil))
}

// TestWriteSeeds refreshes testdata/fuzz seeds from real initiations (run
// with -update-seeds); the committed seeds are checked in by FuzzInitiatorKey.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("WGDEV_UPDATE_SEEDS") == "" {
		t.Skip("set WGDEV_UPDATE_SEEDS=1 to rewrite testdata/fuzz/FuzzInitiatorKey")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzInitiatorKey")
	os.MkdirAll(dir, 0o755)
	resp := fuzzResponder
	for i := 0; i < 3; i++ {
		msg := realInitiation(t, newKeyPair(t), resp.pub)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", msg)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("real%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fuzzResponder is a fixed key pair so the committed seeds stay valid.
var fuzzResponder = func() keyPair {
	k, _ := wgtypes.ParseKey("YGhYHK1Zn2RUEJXN7mGL0EaU5PU1sRXsVlmObRtMhl8=")
	return keyPair{k, k.PublicKey()}
}()

func FuzzInitiatorKey(f *testing.F) {
	r, err := NewResponder(fuzzResponder.priv, fuzzResponder.pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(make([]byte, InitiationSize))
	f.Fuzz(func(t *testing.T, msg []byte) {
		// Forged bodies get a valid mac1 half the time, so the fuzzer
		// reaches the DH and AEAD, not just the mac1 check.
		if len(msg) == InitiationSize && msg[InitiationSize-1]&1 == 1 {
			msg = append([]byte(nil), msg...)
			resealMAC1(r, msg)
		}
		k, err := r.InitiatorKey(msg)
		if err == nil {
			if !IsInitiation(msg) || !r.CheckMAC1(msg) {
				t.Fatalf("accepted a message that is not an initiation for us: %x", msg)
			}
			return
		}
		if k != ([32]byte{}) {
			t.Fatalf("error %v with a non-zero key", err)
		}
		if !errors.Is(err, ErrNotInitiation) && !errors.Is(err, ErrBadMAC1) && !errors.Is(err, ErrBadStatic) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
