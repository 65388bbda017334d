package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

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
