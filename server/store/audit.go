package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Schema of the operations side (audit who/whom, warnings already sent,
// disabled users). It registers itself as migration 3 so that this file and
// the registration side's migrations can be merged without editing the same
// lines; the slice is kept sorted by version.
const opsSchema = `
ALTER TABLE audit ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN peer_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_subject ON audit (subject);
CREATE TABLE peer_warnings (
  peer_id TEXT NOT NULL,
  kind    TEXT NOT NULL,
  sent_at BIGINT NOT NULL,
  PRIMARY KEY (peer_id, kind)
);
CREATE TABLE disabled_users (
  ident      TEXT PRIMARY KEY,
  reason     TEXT NOT NULL DEFAULT '',
  actor      TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
);
`

func init() {
	migrations = append(migrations, migration{3, opsSchema})
	sort.SliceStable(migrations, func(i, j int) bool { return migrations[i].version < migrations[j].version })
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// AuditRecord is one audit log entry with who did it (Actor), whom it
// concerns (Subject, Email), what (Action, Network, PeerID, Detail), when and
// from where (Remote: the client's address, "cli@host" for admin commands,
// empty for the gateway's own timers).
type AuditRecord struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Subject string    `json:"subject,omitempty"`
	Email   string    `json:"email,omitempty"`
	Network string    `json:"network,omitempty"`
	PeerID  string    `json:"peer_id,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Record appends r to the audit log (r.Time defaults to now).
func (s *Store) Record(ctx context.Context, r AuditRecord) error {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO audit (ts, actor, action, network, remote, detail, subject, email, peer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		r.Time.Unix(), r.Actor, r.Action, r.Network, r.Remote, r.Detail, r.Subject, r.Email, r.PeerID)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// AuditQuery selects audit entries; zero fields select everything.
type AuditQuery struct {
	Since time.Time
	// User matches the actor, the subject or the e-mail.
	User   string
	Action string
	// Limit keeps the newest Limit entries (0: all).
	Limit int
}

// QueryAudit returns the entries matching q, oldest first.
func (s *Store) QueryAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error) {
	var where []string
	var args []any
	if !q.Since.IsZero() {
		where = append(where, "ts >= ?")
		args = append(args, q.Since.Unix())
	}
	if q.User != "" {
		where = append(where, "(actor = ? OR subject = ? OR LOWER(email) = LOWER(?))")
		args = append(args, q.User, q.User, q.User)
	}
	if q.Action != "" {
		where = append(where, "action = ?")
		args = append(args, q.Action)
	}
	query := `SELECT id, ts, actor, action, network, remote, detail, subject, email, peer_id FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var r AuditRecord
		var ts int64
		if err := rows.Scan(&r.ID, &ts, &r.Actor, &r.Action, &r.Network, &r.Remote, &r.Detail, &r.Subject, &r.Email, &r.PeerID); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		r.Time = time.Unix(ts, 0)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// DeletePeerByID removes the peer with id and the warnings sent about it.
// It reports whether a row was removed: an expiry or revocation that lost a
// race with a re-registration (which gives the peer a new id) removes
// nothing.
func (s *Store) DeletePeerByID(ctx context.Context, id string) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("delete peer %s: %w", id, err)
	}
	defer tx.Rollback()
	if err := s.releaseAllocation(ctx, tx, id, ""); err != nil {
		return false, err
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM peers WHERE id = ?`), id)
	if err != nil {
		return false, fmt.Errorf("delete peer %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM peer_warnings WHERE peer_id = ?`), id); err != nil {
		return false, fmt.Errorf("delete warnings of peer %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("delete peer %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// SetLastHandshakes records the latest handshake seen for each peer id.
func (s *Store) SetLastHandshakes(ctx context.Context, hs map[string]time.Time) error {
	if len(hs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record handshakes: %w", err)
	}
	defer tx.Rollback()
	for id, t := range hs {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE peers SET last_handshake = ? WHERE id = ? AND last_handshake < ?`), t.Unix(), id, t.Unix()); err != nil {
			return fmt.Errorf("record handshake of %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record handshakes: %w", err)
	}
	return nil
}

// MarkWarned records that the warning kind about peerID went out. It
// returns false if it had already been recorded (by this gateway before a
// restart, or by another gateway sharing the store): then nobody sends it
// twice.
func (s *Store) MarkWarned(ctx context.Context, peerID, kind string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO peer_warnings (peer_id, kind, sent_at) VALUES (?, ?, ?) ON CONFLICT (peer_id, kind) DO NOTHING`), peerID, kind, at.Unix())
	if err != nil {
		return false, fmt.Errorf("record warning %s of %s: %w", kind, peerID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Warned returns the warnings sent so far, by peer id.
func (s *Store) Warned(ctx context.Context) (map[string]map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT peer_id, kind FROM peer_warnings`)
	if err != nil {
		return nil, fmt.Errorf("read warnings: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]bool{}
	for rows.Next() {
		var id, kind string
		if err := rows.Scan(&id, &kind); err != nil {
			return nil, fmt.Errorf("read warnings: %w", err)
		}
		if out[id] == nil {
			out[id] = map[string]bool{}
		}
		out[id][kind] = true
	}
	return out, rows.Err()
}

// DisabledUser is a user an administrator disabled: no registration is
// accepted for them until enabled again.
type DisabledUser struct {
	// Ident is the subject or e-mail the administrator named.
	Ident   string    `json:"user"`
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor"`
	Created time.Time `json:"disabled_at"`
}

// DisableUser disables ident (a subject or an e-mail). Disabling twice keeps
// the first record.
func (s *Store) DisableUser(ctx context.Context, ident, reason, actor string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO disabled_users (ident, reason, actor, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (ident) DO NOTHING`), ident, reason, actor, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("disable %s: %w", ident, err)
	}
	return nil
}

// EnableUser lifts a DisableUser; it reports whether ident was disabled.
// An e-mail matches whatever its case.
func (s *Store) EnableUser(ctx context.Context, ident string) (bool, error) {
	query := `DELETE FROM disabled_users WHERE ident = ?`
	if strings.Contains(ident, "@") {
		query = `DELETE FROM disabled_users WHERE LOWER(ident) = LOWER(?)`
	}
	res, err := s.db.ExecContext(ctx, s.q(query), ident)
	if err != nil {
		return false, fmt.Errorf("enable %s: %w", ident, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// UserDisabled returns the record disabling subject or email, or nil. The
// subject matches exactly, the e-mail whatever its case (`users disable
// Alice@Example.com` disables alice@example.com).
func (s *Store) UserDisabled(ctx context.Context, subject, email string) (*DisabledUser, error) {
	var d DisabledUser
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT ident, reason, actor, created_at FROM disabled_users WHERE ident = ? OR (LOWER(ident) = LOWER(?) AND ? <> '') ORDER BY created_at LIMIT 1`), subject, email, email).
		Scan(&d.Ident, &d.Reason, &d.Actor, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read disabled users: %w", err)
	}
	d.Created = time.Unix(created, 0)
	return &d, nil
}

// DisabledUsers lists every disabled user.
func (s *Store) DisabledUsers(ctx context.Context) ([]DisabledUser, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ident, reason, actor, created_at FROM disabled_users ORDER BY created_at, ident`)
	if err != nil {
		return nil, fmt.Errorf("read disabled users: %w", err)
	}
	defer rows.Close()
	var out []DisabledUser
	for rows.Next() {
		var d DisabledUser
		var created int64
		if err := rows.Scan(&d.Ident, &d.Reason, &d.Actor, &created); err != nil {
			return nil, fmt.Errorf("read disabled users: %w", err)
		}
		d.Created = time.Unix(created, 0)
		out = append(out, d)
	}
	return out, rows.Err()
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
