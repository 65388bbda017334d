package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"
)

// ErrPoolExhausted means every address of a network's pool is taken.
var ErrPoolExhausted = errors.New("address pool exhausted")

// ErrConflict means a unique value (a public key) already belongs to someone else.
var ErrConflict = errors.New("conflict")

// Allocation is a user's stable pair of tunnel addresses in one network.
type Allocation struct {
	V4 netip.Addr
	V6 netip.Addr // invalid when the network has no IPv6 pool
}

// Allocate returns the addresses of (subject, network), allocating the lowest
// free ones on first use. The gateway's own address (first host) and the
// network and broadcast addresses are never handed out. The IPv6 address
// carries the same host offset as the IPv4 one, so the pair is easy to read.
func (s *Store) Allocate(ctx context.Context, subject, network string, pool4, pool6 netip.Prefix) (Allocation, error) {
	for attempt := 0; ; attempt++ {
		a, err := s.allocateOnce(ctx, subject, network, pool4, pool6)
		// Another gateway sharing the store may take the same address at the
		// same moment; the unique constraint refuses one of us: try again.
		if err != nil && isUniqueViolation(err) && attempt < 20 {
			continue
		}
		return a, err
	}
}

func (s *Store) allocateOnce(ctx context.Context, subject, network string, pool4, pool6 netip.Prefix) (Allocation, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate: %w", err)
	}
	defer tx.Rollback()
	var v4s, v6s string
	err = tx.QueryRowContext(ctx, s.q(`SELECT ipv4, ipv6 FROM allocations WHERE subject = ? AND network = ?`), subject, network).Scan(&v4s, &v6s)
	if err == nil {
		return parseAllocation(v4s, v6s)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Allocation{}, fmt.Errorf("allocate: read: %w", err)
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT ipv4 FROM allocations WHERE network = ?`), network)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate: list used: %w", err)
	}
	used := map[netip.Addr]bool{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			rows.Close()
			return Allocation{}, fmt.Errorf("allocate: list used: %w", err)
		}
		if ip, err := netip.ParseAddr(a); err == nil {
			used[ip] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Allocation{}, fmt.Errorf("allocate: list used: %w", err)
	}
	hosts := uint64(1) << (32 - pool4.Bits())
	var alloc Allocation
	for off := uint64(2); off < hosts-1; off++ {
		ip := AddrAt(pool4, off)
		if !used[ip] {
			alloc.V4 = ip
			if pool6.IsValid() {
				alloc.V6 = AddrAt(pool6, off)
			}
			break
		}
	}
	if !alloc.V4.IsValid() {
		return Allocation{}, fmt.Errorf("network %s (%s): %w", network, pool4, ErrPoolExhausted)
	}
	v6 := ""
	if alloc.V6.IsValid() {
		v6 = alloc.V6.String()
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO allocations (subject, network, ipv4, ipv6, created_at) VALUES (?, ?, ?, ?, ?)`),
		subject, network, alloc.V4.String(), v6, time.Now().Unix()); err != nil {
		return Allocation{}, fmt.Errorf("allocate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Allocation{}, fmt.Errorf("allocate: commit: %w", err)
	}
	return alloc, nil
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
	ID            string
	Subject       string
	Email         string
	Network       string
	PublicKey     string
	Hostname      string
	OS            string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	LastHandshake time.Time
	Addr          Allocation
}

// PutPeer records p as the peer of (p.Subject, p.Network), replacing and
// returning the previous one, if any (its key must leave the device).
func (s *Store) PutPeer(ctx context.Context, p Peer) (*Peer, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store peer: %w", err)
	}
	defer tx.Rollback()
	old, err := s.scanPeer(tx.QueryRowContext(ctx, s.q(peerSelect+` WHERE p.subject = ? AND p.network = ?`), p.Subject, p.Network))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store peer: %w", err)
	}
	if old != nil {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM peers WHERE id = ?`), old.ID); err != nil {
			return nil, fmt.Errorf("store peer: remove previous: %w", err)
		}
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO peers (id, subject, email, network, public_key, hostname, os, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		p.ID, p.Subject, p.Email, p.Network, p.PublicKey, p.Hostname, p.OS, p.CreatedAt.Unix(), p.ExpiresAt.Unix())
	if err != nil {
		if isUniqueViolation(err) {
			return nil, fmt.Errorf("public key already registered by another peer: %w", ErrConflict)
		}
		return nil, fmt.Errorf("store peer: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store peer: commit: %w", err)
	}
	return old, nil
}

const peerSelect = `SELECT p.id, p.subject, p.email, p.network, p.public_key, p.hostname, p.os, p.created_at, p.expires_at, p.last_handshake, COALESCE(a.ipv4, ''), COALESCE(a.ipv6, '')
FROM peers p LEFT JOIN allocations a ON a.subject = p.subject AND a.network = p.network`

type scanner interface{ Scan(...any) error }

func (s *Store) scanPeer(row scanner) (*Peer, error) {
	var p Peer
	var created, expires, hs int64
	var v4, v6 string
	if err := row.Scan(&p.ID, &p.Subject, &p.Email, &p.Network, &p.PublicKey, &p.Hostname, &p.OS, &created, &expires, &hs, &v4, &v6); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	p.CreatedAt, p.ExpiresAt = time.Unix(created, 0), time.Unix(expires, 0)
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

// Peer returns the peer of (subject, network).
func (s *Store) Peer(ctx context.Context, subject, network string) (*Peer, error) {
	return s.scanPeer(s.db.QueryRowContext(ctx, s.q(peerSelect+` WHERE p.subject = ? AND p.network = ?`), subject, network))
}

// Peers lists the peers of network ("" = all networks), oldest first.
func (s *Store) Peers(ctx context.Context, network string) ([]Peer, error) {
	q, args := peerSelect, []any{}
	if network != "" {
		q += ` WHERE p.network = ?`
		args = append(args, network)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY p.created_at, p.id`), args...)
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

// DeletePeer removes the peer of (subject, network) and returns it. The
// address allocation stays: the user gets the same address next time.
func (s *Store) DeletePeer(ctx context.Context, subject, network string) (*Peer, error) {
	p, err := s.Peer(ctx, subject, network)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM peers WHERE id = ?`), p.ID); err != nil {
		return nil, fmt.Errorf("delete peer: %w", err)
	}
	return p, nil
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Time    time.Time
	Actor   string // token subject, or "gateway" for its own timers
	Action  string // "register", "delete", "expire", ...
	Network string
	Remote  string // client address as seen by the API
	Detail  string
}

// Audit appends an entry to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO audit (ts, actor, action, network, remote, detail) VALUES (?, ?, ?, ?, ?, ?)`),
		e.Time.Unix(), e.Actor, e.Action, e.Network, e.Remote, e.Detail)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// AuditLog returns entries since t, oldest first.
func (s *Store) AuditLog(ctx context.Context, since time.Time) ([]AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT ts, actor, action, network, remote, detail FROM audit WHERE ts >= ? ORDER BY id`), since.Unix())
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var ts int64
		if err := rows.Scan(&ts, &e.Actor, &e.Action, &e.Network, &e.Remote, &e.Detail); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		e.Time = time.Unix(ts, 0)
		out = append(out, e)
	}
	return out, rows.Err()
}
