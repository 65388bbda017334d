package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

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
