package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/big"
	"net/netip"
	"strings"
	"time"
)

// ErrPoolExhausted means every address of a network's pool is taken.
var ErrPoolExhausted = errors.New("address pool exhausted")

// ErrConflict means a unique value (a public key) already belongs to someone else.
var ErrConflict = errors.New("conflict")

// ErrDeviceLimit means the user already holds the most devices allowed in a network.
var ErrDeviceLimit = errors.New("device limit reached")

// ErrReplay means a registration nonce was seen before.
var ErrReplay = errors.New("nonce already used")

// Allocation is a device's stable pair of tunnel addresses in one network.
type Allocation struct {
	V4 netip.Addr
	V6 netip.Addr // invalid when the network has no IPv6 pool
}

// AllocRequest names the device an allocation is for.
type AllocRequest struct {
	Subject, Network, Device string
	Pool4, Pool6             netip.Prefix
	// MaxDevices bounds how many addresses one user holds in the network
	// (0: no bound), so that one user cannot drain the pool by inventing
	// device ids.
	MaxDevices int
	// PublicKey, when set, lets the device adopt the allocation its user
	// got before devices were known (schema 1, device ""), if the peer
	// registered then used this key: an upgraded client keeps its address.
	PublicKey string
}

// Allocate returns the addresses of (subject, network) for a client that
// names no device. See AllocateDevice.
func (s *Store) Allocate(ctx context.Context, subject, network string, pool4, pool6 netip.Prefix) (Allocation, error) {
	return s.AllocateDevice(ctx, AllocRequest{Subject: subject, Network: network, Pool4: pool4, Pool6: pool6})
}

// AllocateDevice returns the addresses of (subject, network, device),
// allocating free ones on first use: the next after the highest in use, or,
// once the pool's end is reached, the lowest gap. The gateway's own address
// (first host) and the network and broadcast addresses are never handed
// out. The IPv6 address carries the same host offset as the IPv4 one, so
// the pair is easy to read. Allocations are serialised per network (a
// PostgreSQL advisory lock; SQLite has one writer), so gateways sharing a
// store never hand out one address twice.
func (s *Store) AllocateDevice(ctx context.Context, r AllocRequest) (Allocation, error) {
	if !r.Pool4.Addr().Is4() {
		return Allocation{}, fmt.Errorf("network %s: no IPv4 pool", r.Network)
	}
	// Re-registration, the common case, needs no lock. A device coming
	// back within its grace period goes through the lock: it counts
	// against the device limit again.
	if a, released, err := s.lookupAllocation(ctx, s.db, r); (err == nil && !released) || (err != nil && !errors.Is(err, ErrNotFound)) {
		return a, err
	}
	for attempt := 0; ; attempt++ {
		a, err := s.allocateOnce(ctx, r)
		// The lock makes a collision unlikely; the unique constraints are
		// the last word, and a refused insert is simply tried again.
		if err != nil && isUniqueViolation(err) && attempt < 20 {
			continue
		}
		return a, err
	}
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// lookupAllocation returns the device's allocation and whether it is in
// its grace period (its peer revoked, deleted or expired).
func (s *Store) lookupAllocation(ctx context.Context, q querier, r AllocRequest) (Allocation, bool, error) {
	var v4s, v6s string
	var released int64
	err := q.QueryRowContext(ctx, s.q(`SELECT ipv4, ipv6, released_at FROM allocations WHERE subject = ? AND network = ? AND device = ?`), r.Subject, r.Network, r.Device).Scan(&v4s, &v6s, &released)
	if errors.Is(err, sql.ErrNoRows) {
		return Allocation{}, false, ErrNotFound
	}
	if err != nil {
		return Allocation{}, false, fmt.Errorf("allocate: read: %w", err)
	}
	a, err := parseAllocation(v4s, v6s)
	return a, released > 0, err
}

// liveDevices counts the devices of (subject, network) that hold an
// address and a valid key (or are registering): revoked, deleted and
// expired ones do not count, whether or not their grace period ended.
func (s *Store) liveDevices(ctx context.Context, tx *sql.Tx, r AllocRequest) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM allocations a WHERE a.subject = ? AND a.network = ? AND a.device <> ? AND a.released_at = 0
  AND NOT EXISTS (SELECT 1 FROM peers p WHERE p.subject = a.subject AND p.network = a.network AND p.device = a.device AND p.expires_at <= ?)`),
		r.Subject, r.Network, r.Device, s.now().Unix()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("allocate: count devices: %w", err)
	}
	return n, nil
}

// lockKey is the advisory lock serialising allocations in network.
func lockKey(network string) int64 {
	h := fnv.New64a()
	h.Write([]byte("clearpath/allocate/" + network))
	return int64(h.Sum64())
}

func (s *Store) allocateOnce(ctx context.Context, r AllocRequest) (Allocation, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate: %w", err)
	}
	defer tx.Rollback()
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(r.Network)); err != nil {
			return Allocation{}, fmt.Errorf("allocate: lock: %w", err)
		}
	}
	a, released, err := s.lookupAllocation(ctx, tx, r)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return a, err
	}
	if err == nil && !released {
		return a, nil
	}
	if r.MaxDevices > 0 {
		n, err := s.liveDevices(ctx, tx, r)
		if err != nil {
			return Allocation{}, err
		}
		if n >= r.MaxDevices {
			return Allocation{}, fmt.Errorf("user %s holds %d live devices in network %s, the most allowed: %w", r.Subject, n, r.Network, ErrDeviceLimit)
		}
	}
	if released {
		// Back within its grace period: the same addresses, live again.
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE allocations SET released_at = 0, released_why = '' WHERE subject = ? AND network = ? AND device = ?`), r.Subject, r.Network, r.Device); err != nil {
			return Allocation{}, fmt.Errorf("allocate: reclaim: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return Allocation{}, fmt.Errorf("allocate: commit: %w", err)
		}
		return a, nil
	}
	if r.PublicKey != "" && r.Device != "" {
		if a, ok, err := s.adoptLegacy(ctx, tx, r); err != nil || ok {
			if err == nil {
				err = tx.Commit()
			}
			return a, err
		}
	}
	num, err := s.freeV4(ctx, tx, r.Network, r.Pool4)
	if errors.Is(err, ErrPoolExhausted) {
		// Addresses whose grace period ended may not have been swept yet.
		exhausted := err
		var freed []DeviceInfo
		if freed, err = s.freeDue(ctx, tx, r.Network, s.now()); err == nil && len(freed) > 0 {
			num, err = s.freeV4(ctx, tx, r.Network, r.Pool4)
		} else if err == nil {
			err = fmt.Errorf("%w%s", exhausted, s.heldInGrace(ctx, tx, r.Network))
		}
	}
	if err != nil {
		return Allocation{}, err
	}
	base := v4Num(r.Pool4.Masked().Addr())
	off := uint64(num - base)
	alloc := Allocation{V4: AddrAt(r.Pool4, off)}
	v6 := ""
	if r.Pool6.IsValid() {
		alloc.V6 = AddrAt(r.Pool6, off)
		v6 = alloc.V6.String()
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO allocations (subject, network, device, v4num, ipv4, ipv6, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		r.Subject, r.Network, r.Device, num, alloc.V4.String(), v6, s.now().Unix()); err != nil {
		return Allocation{}, fmt.Errorf("allocate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Allocation{}, fmt.Errorf("allocate: commit: %w", err)
	}
	return alloc, nil
}

// freeV4 returns the number of a free IPv4 address of pool in network.
func (s *Store) freeV4(ctx context.Context, tx *sql.Tx, network string, pool netip.Prefix) (int64, error) {
	base := v4Num(pool.Masked().Addr())
	lo := base + 2                              // .0 is the network, .1 the gateway
	hi := base + int64(1)<<(32-pool.Bits()) - 2 // the last is the broadcast
	var max sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT MAX(v4num) FROM allocations WHERE network = ? AND v4num BETWEEN ? AND ?`), network, lo, hi).Scan(&max); err != nil {
		return 0, fmt.Errorf("allocate: highest in use: %w", err)
	}
	switch {
	case !max.Valid:
		return lo, nil
	case max.Int64 < hi:
		return max.Int64 + 1, nil
	}
	// The top is taken: look for the lowest gap (addresses are rarely
	// freed, so this is the exception).
	var used int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM allocations WHERE network = ? AND v4num = ?`), network, lo).Scan(&used); err != nil {
		return 0, fmt.Errorf("allocate: find a gap: %w", err)
	}
	if used == 0 {
		return lo, nil
	}
	var gap int64
	err := tx.QueryRowContext(ctx, s.q(`SELECT a.v4num + 1 FROM allocations a
WHERE a.network = ? AND a.v4num BETWEEN ? AND ?
  AND NOT EXISTS (SELECT 1 FROM allocations b WHERE b.network = a.network AND b.v4num = a.v4num + 1)
ORDER BY a.v4num LIMIT 1`), network, lo, hi-1).Scan(&gap)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("network %s (%s): %w", network, pool, ErrPoolExhausted)
	}
	if err != nil {
		return 0, fmt.Errorf("allocate: find a gap: %w", err)
	}
	return gap, nil
}

// adoptLegacy gives r.Device the allocation and peer its user registered
// with r.PublicKey before devices existed.
func (s *Store) adoptLegacy(ctx context.Context, tx *sql.Tx, r AllocRequest) (Allocation, bool, error) {
	res, err := tx.ExecContext(ctx, s.q(`UPDATE allocations SET device = ? WHERE subject = ? AND network = ? AND device = ''
  AND EXISTS (SELECT 1 FROM peers p WHERE p.subject = ? AND p.network = ? AND p.device = '' AND p.public_key = ?)`),
		r.Device, r.Subject, r.Network, r.Subject, r.Network, r.PublicKey)
	if err != nil {
		return Allocation{}, false, fmt.Errorf("allocate: adopt: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Allocation{}, false, nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE peers SET device = ? WHERE subject = ? AND network = ? AND device = ''`), r.Device, r.Subject, r.Network); err != nil {
		return Allocation{}, false, fmt.Errorf("allocate: adopt: %w", err)
	}
	a, _, err := s.lookupAllocation(ctx, tx, r)
	return a, err == nil, err
}

func v4Num(a netip.Addr) int64 {
	b := a.As4()
	return int64(binary.BigEndian.Uint32(b[:]))
}

// AddrAt returns the address at host offset off inside prefix p.
func AddrAt(p netip.Prefix, off uint64) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	n := new(big.Int).SetBytes(b)
	n.Add(n, new(big.Int).SetUint64(off))
	out := n.FillBytes(make([]byte, len(b)))
	a, _ := netip.AddrFromSlice(out)
	return a
}

func parseAllocation(v4, v6 string) (Allocation, error) {
	var a Allocation
	var err error
	if a.V4, err = netip.ParseAddr(v4); err != nil {
		return a, fmt.Errorf("stored address %q: %w", v4, err)
	}
	if v6 != "" {
		if a.V6, err = netip.ParseAddr(v6); err != nil {
			return a, fmt.Errorf("stored address %q: %w", v6, err)
		}
	}
	return a, nil
}

func isUniqueViolation(err error) bool {
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505") || strings.Contains(s, "duplicate key value")
}

// Peer is a registered device key in one network.
type Peer struct {
	ID      string
	Subject string
	Email   string
	Network string
	// Device is the client's device id ("" for peers registered before
	// devices were known).
	Device    string
	PublicKey string
	// PresharedKey is the WireGuard preshared key of the current session
	// (base64), "" for none. A new one is made at every registration.
	PresharedKey  string
	Hostname      string
	OS            string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	LastHandshake time.Time
	Addr          Allocation
	// Groups are the OIDC groups the user's token carried at this
	// registration (or renewal): access rules by group use them.
	Groups []string
}

// PutPeer records p as the peer of (p.Subject, p.Network, p.Device),
// replacing and returning the previous one, if any (its key must leave the
// device when it differs). A public key held by another device of the
// network is a conflict.
func (s *Store) PutPeer(ctx context.Context, p Peer) (*Peer, error) {
	for attempt := 0; ; attempt++ {
		old, err := s.putPeerOnce(ctx, p)
		if err == nil || !isUniqueViolation(err) {
			return old, err
		}
		var subject, device string
		qerr := s.db.QueryRowContext(ctx, s.q(`SELECT subject, device FROM peers WHERE network = ? AND public_key = ?`), p.Network, p.PublicKey).Scan(&subject, &device)
		if qerr == nil && (subject != p.Subject || device != p.Device) {
			return nil, fmt.Errorf("public key already registered by another device: %w", ErrConflict)
		}
		// The same device registering twice at once: the other insert
		// won; replace it.
		if attempt >= 5 {
			return nil, fmt.Errorf("store peer: %w", err)
		}
	}
}

func (s *Store) putPeerOnce(ctx context.Context, p Peer) (*Peer, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store peer: %w", err)
	}
	defer tx.Rollback()
	old, err := s.scanPeer(tx.QueryRowContext(ctx, s.q(peerSelect+` WHERE p.subject = ? AND p.network = ? AND p.device = ?`), p.Subject, p.Network, p.Device))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store peer: %w", err)
	}
	if old != nil {
		// A renewal: the device's previous peer goes, with its warnings.
		if _, err := s.removePeer(ctx, tx, old.ID); err != nil {
			return nil, fmt.Errorf("store peer: remove previous: %w", err)
		}
	}
	groups, err := encodeGroups(p.Groups)
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO peers (id, subject, email, network, device, public_key, preshared_key, hostname, os, created_at, expires_at, oidc_groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		p.ID, p.Subject, p.Email, p.Network, p.Device, p.PublicKey, p.PresharedKey, p.Hostname, p.OS, p.CreatedAt.Unix(), p.ExpiresAt.Unix(), groups)
	if err != nil {
		return nil, err // the caller tells a conflict from a race
	}
	if err := s.claimAllocation(ctx, tx, p); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store peer: commit: %w", err)
	}
	return old, nil
}

const peerSelect = `SELECT p.id, p.subject, p.email, p.network, p.device, p.public_key, p.preshared_key, p.hostname, p.os, p.created_at, p.expires_at, p.last_handshake, COALESCE(a.ipv4, ''), COALESCE(a.ipv6, ''), p.oidc_groups
FROM peers p LEFT JOIN allocations a ON a.subject = p.subject AND a.network = p.network AND a.device = p.device`

type scanner interface{ Scan(...any) error }

func (s *Store) scanPeer(row scanner) (*Peer, error) {
	var p Peer
	var created, expires, hs int64
	var v4, v6, groups string
	if err := row.Scan(&p.ID, &p.Subject, &p.Email, &p.Network, &p.Device, &p.PublicKey, &p.PresharedKey, &p.Hostname, &p.OS, &created, &expires, &hs, &v4, &v6, &groups); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	p.CreatedAt, p.ExpiresAt = time.Unix(created, 0), time.Unix(expires, 0)
	var err error
	if p.Groups, err = decodeGroups(groups); err != nil {
		return nil, err
	}
	if hs > 0 {
		p.LastHandshake = time.Unix(hs, 0)
	}
	if v4 != "" {
		a, err := parseAllocation(v4, v6)
		if err != nil {
			return nil, err
		}
		p.Addr = a
	}
	return &p, nil
}

// DevicePeer returns the peer of (subject, network, device).
func (s *Store) DevicePeer(ctx context.Context, subject, network, device string) (*Peer, error) {
	return s.scanPeer(s.db.QueryRowContext(ctx, s.q(peerSelect+` WHERE p.subject = ? AND p.network = ? AND p.device = ?`), subject, network, device))
}

// PeerByID returns the peer with id.
func (s *Store) PeerByID(ctx context.Context, id string) (*Peer, error) {
	return s.scanPeer(s.db.QueryRowContext(ctx, s.q(peerSelect+` WHERE p.id = ?`), id))
}

// PeerByKey returns the peer of network holding publicKey.
func (s *Store) PeerByKey(ctx context.Context, network, publicKey string) (*Peer, error) {
	return s.scanPeer(s.db.QueryRowContext(ctx, s.q(peerSelect+` WHERE p.network = ? AND p.public_key = ?`), network, publicKey))
}

// UserPeers lists the peers (one per device) of subject in network.
func (s *Store) UserPeers(ctx context.Context, subject, network string) ([]Peer, error) {
	return s.listPeers(ctx, ` WHERE p.subject = ? AND p.network = ?`, subject, network)
}

// Peers lists the peers of network ("" = all networks), oldest first.
func (s *Store) Peers(ctx context.Context, network string) ([]Peer, error) {
	if network == "" {
		return s.listPeers(ctx, "")
	}
	return s.listPeers(ctx, ` WHERE p.network = ?`, network)
}

func (s *Store) listPeers(ctx context.Context, where string, args ...any) ([]Peer, error) {
	rows, err := s.db.QueryContext(ctx, s.q(peerSelect+where+` ORDER BY p.created_at, p.id`), args...)
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	defer rows.Close()
	var out []Peer
	for rows.Next() {
		p, err := s.scanPeer(rows)
		if err != nil {
			return nil, fmt.Errorf("list peers: %w", err)
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// DeletePeer removes the peer with id and the warnings sent about it, and
// starts the grace period of its device's address (the device gets the
// same address if it comes back by then). why is the release reason
// (StateDeleted when the user deleted their own peer), or "" to tell
// StateRevoked from StateExpired by the peer's expiry. It reports whether
// a peer was removed: an expiry or revocation that lost a race with a
// re-registration (which gives the peer a new id) removes nothing.
//
// It is the one way a peer leaves the store, so that no path leaves its
// warnings behind.
func (s *Store) DeletePeer(ctx context.Context, id, why string) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("delete peer %s: %w", id, err)
	}
	defer tx.Rollback()
	if err := s.releaseAllocation(ctx, tx, id, why); err != nil {
		return false, err
	}
	gone, err := s.removePeer(ctx, tx, id)
	if err != nil {
		return false, fmt.Errorf("delete peer %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("delete peer %s: %w", id, err)
	}
	return gone, nil
}

// removePeer deletes, in tx, the peer row with id and the warnings sent
// about it: every path that removes a peer (DeletePeer, a renewal
// replacing the device's peer in PutPeer, FreeDevice) goes through here,
// so none leaves warnings behind. It reports whether a row was removed.
func (s *Store) removePeer(ctx context.Context, tx execer, id string) (bool, error) {
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM peers WHERE id = ?`), id)
	if err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM peer_warnings WHERE peer_id = ?`), id); err != nil {
		return false, fmt.Errorf("warnings: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// UseNonce records a registration nonce until expires. A nonce seen before
// (by any gateway sharing the store) is ErrReplay.
func (s *Store) UseNonce(ctx context.Context, nonce string, expires time.Time) error {
	if s.nonces.Add(1)%256 == 0 {
		if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM registration_nonces WHERE expires_at < ?`), time.Now().Unix()); err != nil {
			return fmt.Errorf("purge nonces: %w", err)
		}
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO registration_nonces (nonce, expires_at) VALUES (?, ?)`), nonce, expires.Unix())
	if err != nil && isUniqueViolation(err) {
		return ErrReplay
	}
	if err != nil {
		return fmt.Errorf("record nonce: %w", err)
	}
	return nil
}
