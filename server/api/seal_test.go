package api

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func keys(t testing.TB) (wgtypes.Key, wgtypes.Key) {
	a, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestSealedRegistrationProvesTheKey(t *testing.T) {
	device, network := keys(t)
	claims := RegisterClaims{Subject: "alice", Network: "eng", DeviceID: "d1", Hostname: "laptop", OS: "linux", IssuedAt: time.Now().Unix()}
	req, err := SealRegistration(claims, "eng", device, network.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if req.PublicKey != device.PublicKey().String() {
		t.Fatalf("public_key %s, want the device's", req.PublicKey)
	}
	pub, err := ParseKey(req.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := OpenRegistration(req, pub, network)
	if err != nil || got != claims {
		t.Fatalf("opened %+v (%v), want %+v", got, err, claims)
	}
	// Sealed with a key the client does not hold the private half of:
	// the body claims device's public key but was sealed by another key.
	mallory, _ := keys(t)
	forged, _ := SealRegistration(claims, "eng", mallory, network.PublicKey())
	forged.PublicKey = req.PublicKey
	if _, _, err := OpenRegistration(forged, pub, network); !isProof(err, "not sealed by the private key") {
		t.Errorf("forged: %v", err)
	}
	// Sealed to another network's key.
	other, _ := keys(t)
	if _, _, err := OpenRegistration(req, pub, other); !isProof(err, "not sealed") {
		t.Errorf("other network: %v", err)
	}
	// Tampered ciphertext.
	b, _ := base64.StdEncoding.DecodeString(req.Sealed)
	b[len(b)-1] ^= 1
	bad := req
	bad.Sealed = base64.StdEncoding.EncodeToString(b)
	if _, _, err := OpenRegistration(bad, pub, network); !isProof(err, "not sealed") {
		t.Errorf("tampered: %v", err)
	}
	bad = req
	bad.Nonce = "short"
	if _, _, err := OpenRegistration(bad, pub, network); !isProof(err, "nonce") {
		t.Errorf("bad nonce: %v", err)
	}
	// A session box (the other direction, same box key) is not a registration.
	sess, _ := SealSecret(Key{7}, network, device.PublicKey())
	swapped := req
	swapped.Nonce, swapped.Sealed = sess.Nonce, sess.Sealed
	if _, _, err := OpenRegistration(swapped, pub, network); !isProof(err, "not a registration") {
		t.Errorf("a session box as registration: %v", err)
	}
}

func isProof(err error, says string) bool {
	var pe *ProofError
	return errors.As(err, &pe) && strings.Contains(err.Error(), says)
}

func TestSessionSecret(t *testing.T) {
	device, network := keys(t)
	s, err := SealSecret(Key{1, 2, 3}, network, device.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenSecret(s, device, network.PublicKey())
	if err != nil || got != (Key{1, 2, 3}) {
		t.Fatalf("opened %v (%v)", got, err)
	}
	eve, _ := keys(t)
	if _, err := OpenSecret(s, eve, network.PublicKey()); err == nil {
		t.Fatal("another device opened the session key")
	}
}

func TestParseKeyRefusesLowOrderPoints(t *testing.T) {
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))
	one := make([]byte, 32)
	one[0] = 1
	for _, k := range []string{zero, base64.StdEncoding.EncodeToString(one)} {
		if _, err := ParseKey(k); err == nil || !strings.Contains(err.Error(), "low-order") {
			t.Errorf("ParseKey(%s) = %v, want low-order refused", k, err)
		}
	}
	for k, want := range map[string]string{"": "required", "!!": "base64", "AAAA": "3 bytes"} {
		if _, err := ParseKey(k); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKey(%q) = %v, want %q", k, err, want)
		}
	}
}

// FuzzOpenRegistration: whatever a client sends, opening never panics and
// only a genuinely sealed body opens.
func FuzzOpenRegistration(f *testing.F) {
	device, network := keys(f)
	req, _ := SealRegistration(RegisterClaims{Subject: "s", Network: "n", DeviceID: "d"}, "n", device, network.PublicKey())
	f.Add(req.Nonce, req.Sealed)
	f.Add("", "")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "AAAA")
	pub := Key(device.PublicKey())
	f.Fuzz(func(t *testing.T, nonce, sealed string) {
		r := RegisterRequest{PublicKey: req.PublicKey, Nonce: nonce, Sealed: sealed}
		c, _, err := OpenRegistration(r, pub, network)
		if err == nil && (nonce != req.Nonce || sealed != req.Sealed) && c.Subject != "s" {
			t.Fatalf("a body the device did not seal opened: %+v", c)
		}
	})
}
