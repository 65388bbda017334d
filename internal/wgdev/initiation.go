package wgdev

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// Why this file exists: a lazy device (lazy.go) holds only the peers that are
// active. When a handshake initiation arrives from a peer that is not on the
// device, the device must learn who sent it before wireguard-go sees the
// packet, so that the peer can be put on the device in time. The sender's
// static key travels encrypted in the initiation; opening it takes the first
// half of the responder's side of Noise IK (one X25519 and a few BLAKE2s).
// The constants and steps follow the WireGuard paper (section 5.4.2) and
// wireguard-go's device/noise-protocol.go and cookie.go.

// Sizes and offsets of a handshake initiation (message type 1).
const (
	InitiationSize  = 148
	initEphemeral   = 8   // type (4) + sender index (4)
	initStatic      = 40  // + ephemeral (32)
	initTimestamp   = 88  // + encrypted static (32 + 16)
	initMAC1        = 116 // + encrypted timestamp (12 + 16)
	initMAC2        = 132
	messageTypeInit = 1
)

const (
	noiseConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	wgIdentifier      = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	labelMAC1         = "mac1----"
)

// Errors InitiatorKey returns; callers tell them apart with errors.Is.
var (
	ErrNotInitiation = errors.New("not a WireGuard handshake initiation")
	ErrBadMAC1       = errors.New("handshake initiation: mac1 does not match this device's public key")
	ErrBadStatic     = errors.New("handshake initiation: the encrypted static key does not open")
)

// Responder is the precomputed part of opening initiations sent to one
// device: its static key pair and the values that depend only on it.
type Responder struct {
	priv, pub [32]byte
	mac1Key   [blake2s.Size]byte
	hash0     [blake2s.Size]byte // HASH(HASH(C0 || identifier) || pub)
	chain0    [blake2s.Size]byte // C0 = HASH(construction)
}

// NewResponder precomputes what opening initiations to the device with
// static key pair (priv, pub) needs. pub must be priv's public key.
func NewResponder(priv, pub [32]byte) (*Responder, error) {
	want, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("device private key: %w", err)
	}
	if !hmac.Equal(want, pub[:]) {
		return nil, errors.New("device public key does not belong to its private key")
	}
	r := &Responder{priv: priv, pub: pub}
	h, _ := blake2s.New256(nil)
	h.Write([]byte(labelMAC1))
	h.Write(pub[:])
	h.Sum(r.mac1Key[:0])
	r.chain0 = blake2s.Sum256([]byte(noiseConstruction))
	r.hash0 = mixHash(r.chain0, []byte(wgIdentifier))
	r.hash0 = mixHash(r.hash0, pub[:])
	return r, nil
}

// IsInitiation reports whether msg has the type and size of a handshake
// initiation (what wireguard-go itself checks before anything else).
func IsInitiation(msg []byte) bool {
	return len(msg) == InitiationSize && msg[0] == messageTypeInit && msg[1] == 0 && msg[2] == 0 && msg[3] == 0
}

// CheckMAC1 reports whether msg's mac1 was made for this device: a keyed
// BLAKE2s-128 over msg[:116], keyed with HASH("mac1----" || responder pub).
// It is cheap and refuses everything not sent to this device's public key.
func (r *Responder) CheckMAC1(msg []byte) bool {
	if !IsInitiation(msg) {
		return false
	}
	mac, _ := blake2s.New128(r.mac1Key[:])
	mac.Write(msg[:initMAC1])
	var sum [blake2s.Size128]byte
	mac.Sum(sum[:0])
	return hmac.Equal(sum[:], msg[initMAC1:initMAC2])
}

// InitiatorKey returns the static public key of the peer that sent the
// handshake initiation msg to this device. It checks mac1 first and then
// opens the encrypted static key (one X25519); it does not check the
// timestamp, which needs the initiator's key and wireguard-go checks anyway.
// A key returned here is only who the sender claims to be until wireguard-go
// completes the handshake (that needs the initiator's private key).
func (r *Responder) InitiatorKey(msg []byte) ([32]byte, error) {
	var key [32]byte
	if !IsInitiation(msg) {
		return key, fmt.Errorf("%w (%d bytes, type byte %d)", ErrNotInitiation, len(msg), firstByte(msg))
	}
	if !r.CheckMAC1(msg) {
		return key, ErrBadMAC1
	}
	eph := msg[initEphemeral:initStatic]
	hash := mixHash(r.hash0, eph)
	chain := kdf1(r.chain0[:], eph)
	ss, err := curve25519.X25519(r.priv[:], eph)
	if err != nil { // a low-order ephemeral: all-zero shared secret
		return key, fmt.Errorf("%w: %v", ErrBadStatic, err)
	}
	_, k := kdf2(chain[:], ss)
	aead, err := chacha20poly1305.New(k[:])
	if err != nil {
		return key, err
	}
	var nonce [chacha20poly1305.NonceSize]byte
	if _, err := aead.Open(key[:0], nonce[:], msg[initStatic:initTimestamp], hash[:]); err != nil {
		return [32]byte{}, ErrBadStatic
	}
	return key, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func mixHash(h [blake2s.Size]byte, data []byte) [blake2s.Size]byte {
	d, _ := blake2s.New256(nil)
	d.Write(h[:])
	d.Write(data)
	var out [blake2s.Size]byte
	d.Sum(out[:0])
	return out
}

func newBlake2s() hash.Hash { h, _ := blake2s.New256(nil); return h }

func hmac1(key []byte, in ...[]byte) [blake2s.Size]byte {
	m := hmac.New(newBlake2s, key)
	for _, b := range in {
		m.Write(b)
	}
	var out [blake2s.Size]byte
	m.Sum(out[:0])
	return out
}

// kdf1 and kdf2 are the HKDF of the WireGuard paper with HMAC-BLAKE2s.
func kdf1(key, input []byte) [blake2s.Size]byte {
	prk := hmac1(key, input)
	return hmac1(prk[:], []byte{1})
}

func kdf2(key, input []byte) (t0, t1 [blake2s.Size]byte) {
	prk := hmac1(key, input)
	t0 = hmac1(prk[:], []byte{1})
	t1 = hmac1(prk[:], t0[:], []byte{2})
	return t0, t1
}

func newMAC1(r *Responder) hash.Hash { h, _ := blake2s.New128(r.mac1Key[:]); return h }
