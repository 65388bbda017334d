package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DefaultAllocationGrace is how long an allocation outlives its peer.
const DefaultAllocationGrace = 7 * 24 * time.Hour

// orphanAge is how long a fresh allocation may stay without a peer (a
// registration that failed after allocating) before its grace starts.
const orphanAge = time.Hour

// Release reasons (released_why) and the device states of DeviceInfo.
const (
	StateLive     = "live"
	StateRevoked  = "revoked"
	StateExpired  = "expired"
	StateDeleted  = "deleted"  // the user deleted their own peer
	StateReleased = "released" // no peer for another reason (a failed registration, an upgrade)
)

func (s *Store) SetClock(now func() time.Time) { s.clock = now }

func (s *Store) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// SetAllocationGrace sets how long an allocation outlives its device's
// peer (the gateway's allocation_grace). 0 frees it at the next allocation
// or sweep.
func (s *Store) SetAllocationGrace(d time.Duration) { s.grace.Store(int64(d)) }

// AllocationGrace returns the grace period in force.
func (s *Store) AllocationGrace() time.Duration { return time.Duration(s.grace.Load()) }

// execer runs statements on the database or inside a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// claimAllocation marks the allocation of p's device as in use again by a
// peer (its grace, if any, ends) and keeps its owner's e-mail and host.
func (s *Store) claimAllocation(ctx context.Context, tx execer, p Peer) error {
	// A renewal changes nothing here: no row is written then.
	_, err := tx.ExecContext(ctx, s.q(`UPDATE allocations SET released_at = 0, released_why = '', email = ?, hostname = ? WHERE subject = ? AND network = ? AND device = ?
  AND (released_at <> 0 OR email <> ? OR hostname <> ?)`),
		p.Email, p.Hostname, p.Subject, p.Network, p.Device, p.Email, p.Hostname)
	if err != nil {
		return fmt.Errorf("claim allocation: %w", err)
	}
	return nil
}

// releaseAllocation starts the grace period of the allocation of the device
// of the peer with id, which the caller is about to delete (in tx). why is
// StateDeleted, or "" to tell revoked from expired by the peer's expiry.
func (s *Store) releaseAllocation(ctx context.Context, tx execer, id, why string) error {
	var subject, network, device string
	var expires int64
	err := tx.QueryRowContext(ctx, s.q(`SELECT subject, network, device, expires_at FROM peers WHERE id = ?`), id).Scan(&subject, &network, &device, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release allocation of peer %s: %w", id, err)
	}
	now := s.now()
	if why == "" {
		why = StateRevoked
		if expires <= now.Unix() {
			why = StateExpired
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE allocations SET released_at = ?, released_why = ? WHERE subject = ? AND network = ? AND device = ? AND released_at = 0`),
		now.Unix(), why, subject, network, device); err != nil {
		return fmt.Errorf("release allocation of peer %s: %w", id, err)
	}
	return nil
}

// freeDue frees, in tx, the allocations of network ("" = all) whose grace
// ended by now, after marking those left without a peer for orphanAge (a
// registration that failed after allocating) as released. It returns the
// freed ones.
func (s *Store) freeDue(ctx context.Context, tx *sql.Tx, network string, now time.Time) ([]DeviceInfo, error) {
	where, args := "", []any{}
	if network != "" {
		where, args = " AND network = ?", []any{network}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE allocations SET released_at = ?, released_why = ? WHERE released_at = 0 AND created_at <= ?`+where+`
  AND NOT EXISTS (SELECT 1 FROM peers p WHERE p.subject = allocations.subject AND p.network = allocations.network AND p.device = allocations.device)`),
		append([]any{now.Unix(), StateReleased, now.Add(-orphanAge).Unix()}, args...)...); err != nil {
		return nil, fmt.Errorf("free addresses: mark orphans: %w", err)
	}
	cutoff := now.Add(-s.AllocationGrace()).Unix()
	due, err := s.queryDevices(ctx, tx, ` WHERE a.released_at > 0 AND a.released_at <= ?`+aliased(where), append([]any{cutoff}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("free addresses: %w", err)
	}
	if len(due) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM allocations WHERE released_at > 0 AND released_at <= ?`+where), append([]any{cutoff}, args...)...); err != nil {
		return nil, fmt.Errorf("free addresses: %w", err)
	}
	for i := range due {
		due[i].FreedAt = now
	}
	return due, nil
}

func aliased(where string) string {
	if where == "" {
		return ""
	}
	return " AND a.network = ?"
}

// FreeReleased frees every allocation whose grace period ended by now and
// returns them (the lifecycle's periodic sweep; allocations also free
// lazily when their network allocates).
func (s *Store) FreeReleased(ctx context.Context, now time.Time) ([]DeviceInfo, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("free addresses: %w", err)
	}
	defer tx.Rollback()
	freed, err := s.freeDue(ctx, tx, "", now)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("free addresses: commit: %w", err)
	}
	return freed, nil
}

// DeviceInfo is one device's allocation as `vpn-gateway devices list`
// shows it.
type DeviceInfo struct {
	Subject  string     `json:"subject"`
	Email    string     `json:"email,omitempty"`
	Network  string     `json:"network"`
	Device   string     `json:"device"`
	Hostname string     `json:"hostname,omitempty"`
	Addr     Allocation `json:"-"`
	// State is StateLive, StateRevoked, StateExpired, StateDeleted or
	// StateReleased.
	State string `json:"state"`
	// PeerID is the device's current peer ("" once it is gone).
	PeerID string `json:"peer_id,omitempty"`
	// ReleasedAt is when the device's peer went (zero while live).
	ReleasedAt time.Time `json:"released_at,omitzero"`
	// FreedAt is when the address becomes free for others: ReleasedAt plus
	// the grace period (zero while live), or when it was freed.
	FreedAt time.Time `json:"freed_at,omitzero"`
}

const deviceSelect = `SELECT a.subject, a.network, a.device, a.ipv4, a.ipv6, a.email, a.hostname, a.released_at, a.released_why,
  COALESCE(p.id, ''), COALESCE(p.email, ''), COALESCE(p.hostname, ''), COALESCE(p.expires_at, 0)
FROM allocations a LEFT JOIN peers p ON p.subject = a.subject AND p.network = a.network AND p.device = a.device`

func (s *Store) queryDevices(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, where string, args ...any) ([]DeviceInfo, error) {
	rows, err := q.QueryContext(ctx, s.q(deviceSelect+where+` ORDER BY a.network, a.subject, a.device`), args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	now := s.now()
	grace := s.AllocationGrace()
	var out []DeviceInfo
	for rows.Next() {
		var d DeviceInfo
		var v4, v6, why, pEmail, pHost string
		var released, expires int64
		if err := rows.Scan(&d.Subject, &d.Network, &d.Device, &v4, &v6, &d.Email, &d.Hostname, &released, &why, &d.PeerID, &pEmail, &pHost, &expires); err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		if d.Addr, err = parseAllocation(v4, v6); err != nil {
			return nil, err
		}
		if pEmail != "" {
			d.Email = pEmail
		}
		if pHost != "" {
			d.Hostname = pHost
		}
		switch {
		case d.PeerID != "" && expires > now.Unix():
			d.State = StateLive
		case d.PeerID != "":
			// Expired, not yet removed by a gateway: its grace runs from
			// the expiry.
			d.State = StateExpired
			d.ReleasedAt = time.Unix(expires, 0)
		case released > 0:
			d.State, d.ReleasedAt = why, time.Unix(released, 0)
		default:
			d.State = StateLive // allocated, registration in progress
		}
		if !d.ReleasedAt.IsZero() {
			d.FreedAt = d.ReleasedAt.Add(grace)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Devices lists the allocations of network ("" = all), with their state.
func (s *Store) Devices(ctx context.Context, network string) ([]DeviceInfo, error) {
	if network == "" {
		return s.queryDevices(ctx, s.db, "")
	}
	return s.queryDevices(ctx, s.db, ` WHERE a.network = ?`, network)
}

// ErrDeviceLive means an administrator asked to free the address of a
// device whose key is still valid.
var ErrDeviceLive = errors.New("device is live")

// FreeDevice releases the allocation of (subject, network, device) now,
// before its grace period ends, and returns it. A live device is refused
// (ErrDeviceLive) unless revoke is set: then its peer is deleted with it
// (DeviceInfo.PeerID names it; the gateways take the key off their devices
// at their next store poll). An expired peer still in the store goes too.
func (s *Store) FreeDevice(ctx context.Context, subject, network, device string, revoke bool) (*DeviceInfo, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("free device: %w", err)
	}
	defer tx.Rollback()
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(network)); err != nil {
			return nil, fmt.Errorf("free device: lock: %w", err)
		}
	}
	ds, err := s.queryDevices(ctx, tx, ` WHERE a.subject = ? AND a.network = ? AND a.device = ?`, subject, network, device)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, ErrNotFound
	}
	d := ds[0]
	if d.State == StateLive && !revoke {
		return &d, fmt.Errorf("device %s of %s in network %s holds a valid key (peer %s): %w", device, who(d), network, dash(d.PeerID), ErrDeviceLive)
	}
	if d.PeerID != "" {
		if _, err := s.removePeer(ctx, tx, d.PeerID); err != nil {
			return nil, fmt.Errorf("free device: remove its peer: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM allocations WHERE subject = ? AND network = ? AND device = ?`), subject, network, device); err != nil {
		return nil, fmt.Errorf("free device: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("free device: commit: %w", err)
	}
	d.FreedAt = s.now()
	return &d, nil
}

func who(d DeviceInfo) string {
	if d.Email != "" {
		return d.Email
	}
	return d.Subject
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// heldInGrace describes the addresses of network held by released devices,
// for the pool-exhausted error.
func (s *Store) heldInGrace(ctx context.Context, tx *sql.Tx, network string) string {
	var n int
	var first sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*), MIN(released_at) FROM allocations WHERE network = ? AND released_at > 0`), network).Scan(&n, &first); err != nil || n == 0 {
		return ""
	}
	at := time.Unix(first.Int64, 0).Add(s.AllocationGrace()).UTC().Format(time.RFC3339)
	return fmt.Sprintf("; %d of its addresses are kept for revoked or expired devices until their grace period (allocation_grace) ends, the first at %s; an administrator frees one now with `vpn-gateway devices free`", n, at)
}

// PruneAudit deletes audit entries older than before and returns how many.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM audit WHERE ts < ?`), before.Unix())
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// UserAllocation is a user's stable addresses in one network.
type UserAllocation struct {
	Subject string
	Network string
	Addr    Allocation
}

// Allocations returns the address allocations of subject ("" = everyone).
func (s *Store) Allocations(ctx context.Context, subject string) ([]UserAllocation, error) {
	q, args := `SELECT subject, network, ipv4, ipv6 FROM allocations`, []any{}
	if subject != "" {
		q += ` WHERE subject = ?`
		args = append(args, subject)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY network, subject`), args...)
	if err != nil {
		return nil, fmt.Errorf("list allocations: %w", err)
	}
	defer rows.Close()
	var out []UserAllocation
	for rows.Next() {
		var a UserAllocation
		var v4, v6 string
		if err := rows.Scan(&a.Subject, &a.Network, &v4, &v6); err != nil {
			return nil, fmt.Errorf("list allocations: %w", err)
		}
		if a.Addr, err = parseAllocation(v4, v6); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
