package store

import (
	"context"
	"fmt"
	"time"
)

// The lifecycle manager's view of peers: the handshakes it saw and the
// warnings (unused, idle, expiring) it sent.

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

// PruneWarnings removes the warnings rows of peers that no longer exist:
// those that stores kept before every peer removal dropped its warnings
// (a user's own delete, a renewal). It returns how many went.
func (s *Store) PruneWarnings(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM peer_warnings WHERE NOT EXISTS (SELECT 1 FROM peers p WHERE p.id = peer_warnings.peer_id)`)
	if err != nil {
		return 0, fmt.Errorf("prune warnings: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
