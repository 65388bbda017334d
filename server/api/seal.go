package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// RegistrationWindow is how far a registration's IssuedAt may be from the
// gateway's clock; the gateway remembers nonces this long.
const RegistrationWindow = 5 * time.Minute

// Contexts prefixed to sealed plaintexts, so a box made for one purpose
// is never accepted for another (both directions share one box key).
const (
	registerContext = "clearpath/register/v1\x00"
	sessionContext  = "clearpath/session-psk/v1\x00"
)

// Key is a Curve25519 key: WireGuard keys are NaCl box keys.
type Key = [32]byte

// PublicKey returns the public half of priv.
func PublicKey(priv Key) Key {
	var pub Key
	curve25519.ScalarBaseMult(&pub, &priv)
	return pub
}

// SealRegistration builds a registration request: the claims sealed with
// the device's private key to the network's public key, under a fresh
// random nonce.
func SealRegistration(c RegisterClaims, network string, devicePriv, networkPub Key) (RegisterRequest, error) {
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return RegisterRequest{}, fmt.Errorf("nonce: %w", err)
	}
	return SealRegistrationWithNonce(c, network, devicePriv, networkPub, nonce)
}

// SealRegistrationWithNonce is SealRegistration with a given nonce (tests).
func SealRegistrationWithNonce(c RegisterClaims, network string, devicePriv, networkPub Key, nonce [24]byte) (RegisterRequest, error) {
	msg, err := json.Marshal(c)
	if err != nil {
		return RegisterRequest{}, err
	}
	pub := PublicKey(devicePriv)
	sealed := box.Seal(nil, append([]byte(registerContext), msg...), &nonce, &networkPub, &devicePriv)
	return RegisterRequest{
		PublicKey: base64.StdEncoding.EncodeToString(pub[:]),
		Network:   network,
		Nonce:     base64.StdEncoding.EncodeToString(nonce[:]),
		Sealed:    base64.StdEncoding.EncodeToString(sealed),
	}, nil
}

// ProofError says why a sealed registration was refused.
type ProofError struct{ Reason string }

func (e *ProofError) Error() string { return "registration proof refused: " + e.Reason }

// ParseKey decodes a base64 Curve25519 public key and refuses the
// low-order points, with which anyone could "seal" without a private key.
func ParseKey(s string) (Key, error) {
	var k Key
	if s == "" {
		return k, errors.New("required")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("%q is not base64", s)
	}
	if len(b) != 32 {
		return k, fmt.Errorf("decodes to %d bytes, a WireGuard key has 32", len(b))
	}
	copy(k[:], b)
	// X25519 fails exactly when the shared secret is all zeros.
	var probe Key
	probe[0] = 8 // any valid scalar
	if _, err := curve25519.X25519(probe[:], k[:]); err != nil {
		return k, errors.New("is a low-order point, not a usable key")
	}
	return k, nil
}

// OpenRegistration opens r with the network's private key. It checks only
// the cryptography: that the holder of r.PublicKey's private key sealed
// these claims. The caller checks subject, network, time and nonce.
// r.PublicKey must have been checked with ParseKey.
func OpenRegistration(r RegisterRequest, devicePub, networkPriv Key) (RegisterClaims, [24]byte, error) {
	var c RegisterClaims
	var nonce [24]byte
	nb, err := base64.StdEncoding.DecodeString(r.Nonce)
	if err != nil || len(nb) != len(nonce) {
		return c, nonce, &ProofError{"nonce: want 24 bytes in base64"}
	}
	copy(nonce[:], nb)
	sealed, err := base64.StdEncoding.DecodeString(r.Sealed)
	if err != nil || len(sealed) == 0 {
		return c, nonce, &ProofError{"sealed: not base64"}
	}
	msg, ok := box.Open(nil, sealed, &nonce, &devicePub, &networkPriv)
	if !ok {
		return c, nonce, &ProofError{"the body is not sealed by the private key of public_key to this network's key"}
	}
	body, ok := cutPrefix(msg, registerContext)
	if !ok {
		return c, nonce, &ProofError{"the sealed body is not a registration"}
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, nonce, &ProofError{"sealed claims: " + err.Error()}
	}
	return c, nonce, nil
}

// SealSecret seals secret from one key to another under a random nonce.
func SealSecret(secret, fromPriv, toPub Key) (SealedSecret, error) {
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return SealedSecret{}, fmt.Errorf("nonce: %w", err)
	}
	sealed := box.Seal(nil, append([]byte(sessionContext), secret[:]...), &nonce, &toPub, &fromPriv)
	return SealedSecret{Nonce: base64.StdEncoding.EncodeToString(nonce[:]), Sealed: base64.StdEncoding.EncodeToString(sealed)}, nil
}

// OpenSecret opens a SealedSecret with the receiver's private key and the
// sender's public key.
func OpenSecret(s SealedSecret, toPriv, fromPub Key) (Key, error) {
	var secret Key
	var nonce [24]byte
	nb, err := base64.StdEncoding.DecodeString(s.Nonce)
	if err != nil || len(nb) != len(nonce) {
		return secret, errors.New("session nonce: want 24 bytes in base64")
	}
	copy(nonce[:], nb)
	sealed, err := base64.StdEncoding.DecodeString(s.Sealed)
	if err != nil {
		return secret, errors.New("session: not base64")
	}
	msg, ok := box.Open(nil, sealed, &nonce, &fromPub, &toPriv)
	if !ok {
		return secret, errors.New("session key is not sealed by the network's key to this device's key")
	}
	body, ok := cutPrefix(msg, sessionContext)
	if !ok || len(body) != len(secret) {
		return secret, errors.New("session: not a preshared key")
	}
	copy(secret[:], body)
	return secret, nil
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return nil, false
	}
	return b[len(prefix):], true
}
