package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// A migration takes the schema from version-1 to version: its SQL, then
// its hook (for steps SQL cannot express the same way in both dialects),
// in one transaction with the row that records the version.
type migration struct {
	version int
	sql     string // {{ID}} becomes the dialect's auto-increment key column
	hook    func(ctx context.Context, tx *sql.Tx, s *Store) error
}

// migrations is the schema's history, oldest first: the one list of every
// version, applied in order by migrate. To change the schema, append one
// entry with the next version; never edit an entry that has shipped.
var migrations = []migration{
	{version: 1, sql: schemaV1},
	{version: 2, sql: schemaV2, hook: fillV4Num},
	{version: 3, sql: schemaV3},
	{version: 4, sql: schemaV4, hook: releaseOrphans},
	{version: 5, sql: schemaV5},
}

// 1: network keys, one address and one peer per (user, network), audit.
const schemaV1 = `
CREATE TABLE network_keys (
  network     TEXT PRIMARY KEY,
  private_key TEXT NOT NULL,
  created_at  BIGINT NOT NULL
);
CREATE TABLE allocations (
  subject    TEXT NOT NULL,
  network    TEXT NOT NULL,
  ipv4       TEXT NOT NULL,
  ipv6       TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  PRIMARY KEY (subject, network),
  UNIQUE (network, ipv4)
);
CREATE UNIQUE INDEX allocations_ipv6 ON allocations (network, ipv6) WHERE ipv6 <> '';
CREATE TABLE peers (
  id             TEXT PRIMARY KEY,
  subject        TEXT NOT NULL,
  email          TEXT NOT NULL DEFAULT '',
  network        TEXT NOT NULL,
  public_key     TEXT NOT NULL UNIQUE,
  hostname       TEXT NOT NULL DEFAULT '',
  os             TEXT NOT NULL DEFAULT '',
  created_at     BIGINT NOT NULL,
  expires_at     BIGINT NOT NULL,
  last_handshake BIGINT NOT NULL DEFAULT 0,
  UNIQUE (subject, network)
);
CREATE TABLE audit (
  id      {{ID}},
  ts      BIGINT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  network TEXT NOT NULL DEFAULT '',
  remote  TEXT NOT NULL DEFAULT '',
  detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_ts ON audit (ts);
`

// 2: one peer per (user, device, network). A device keeps its address
// across key rotations; the per-session preshared key and the
// registration nonces (replay protection shared by every gateway on the
// store) are kept too. v4num (the IPv4 address as a number) lets the
// allocator find the next free address with an index instead of reading
// the whole pool; fillV4Num fills it for old rows.
const schemaV2 = `
CREATE TABLE allocations_v2 (
  subject    TEXT NOT NULL,
  network    TEXT NOT NULL,
  device     TEXT NOT NULL DEFAULT '',
  v4num      BIGINT NOT NULL DEFAULT 0,
  ipv4       TEXT NOT NULL,
  ipv6       TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  PRIMARY KEY (subject, network, device)
);
INSERT INTO allocations_v2 (subject, network, device, v4num, ipv4, ipv6, created_at)
  SELECT subject, network, '', 0, ipv4, ipv6, created_at FROM allocations;
DROP TABLE allocations;
ALTER TABLE allocations_v2 RENAME TO allocations;
CREATE UNIQUE INDEX allocations_v2_ipv4 ON allocations (network, ipv4);
CREATE UNIQUE INDEX allocations_v2_ipv6 ON allocations (network, ipv6) WHERE ipv6 <> '';
CREATE TABLE peers_v2 (
  id             TEXT PRIMARY KEY,
  subject        TEXT NOT NULL,
  email          TEXT NOT NULL DEFAULT '',
  network        TEXT NOT NULL,
  device         TEXT NOT NULL DEFAULT '',
  public_key     TEXT NOT NULL,
  preshared_key  TEXT NOT NULL DEFAULT '',
  hostname       TEXT NOT NULL DEFAULT '',
  os             TEXT NOT NULL DEFAULT '',
  created_at     BIGINT NOT NULL,
  expires_at     BIGINT NOT NULL,
  last_handshake BIGINT NOT NULL DEFAULT 0
);
INSERT INTO peers_v2 (id, subject, email, network, device, public_key, hostname, os, created_at, expires_at, last_handshake)
  SELECT id, subject, email, network, '', public_key, hostname, os, created_at, expires_at, last_handshake FROM peers;
DROP TABLE peers;
ALTER TABLE peers_v2 RENAME TO peers;
CREATE UNIQUE INDEX peers_v2_device ON peers (subject, network, device);
CREATE UNIQUE INDEX peers_v2_key ON peers (network, public_key);
CREATE INDEX peers_v2_expiry ON peers (expires_at);
CREATE TABLE registration_nonces (
  nonce      TEXT PRIMARY KEY,
  expires_at BIGINT NOT NULL
);
CREATE INDEX registration_nonces_expiry ON registration_nonces (expires_at);
`

// 3: the lifecycle side: who an audit entry concerns (subject, email,
// peer_id), the warnings already sent (so that no gateway sends one twice)
// and the users an administrator disabled.
const schemaV3 = `
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

// 4: addresses come back. An allocation outlives its peer by a grace
// period (SetAllocationGrace, default 7 days), so that a device whose key
// was revoked, deleted or expired gets its address back when it returns;
// after that the address is free for anyone. released_at is when the last
// peer of the device went (0 while it has one), released_why says how
// (revoked, expired, deleted). email and hostname keep the device's last
// known owner and name for `vpn-gateway devices list` once the peer is
// gone. releaseOrphans fills them for old rows.
const schemaV4 = `
ALTER TABLE allocations ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE allocations ADD COLUMN hostname TEXT NOT NULL DEFAULT '';
ALTER TABLE allocations ADD COLUMN released_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE allocations ADD COLUMN released_why TEXT NOT NULL DEFAULT '';
CREATE INDEX allocations_released ON allocations (released_at);
`

// 5: each peer keeps the OIDC groups its user's token carried when it
// registered or renewed (a JSON array), so access rules by group (config
// access.go) are decided from them at start, at reload and on every
// gateway sharing the store. "groups" is an SQLite keyword.
const schemaV5 = `
ALTER TABLE peers ADD COLUMN oidc_groups TEXT NOT NULL DEFAULT '[]';
`

// fillV4Num computes v4num for allocations made before migration 2, then
// makes it unique per network.
func fillV4Num(ctx context.Context, tx *sql.Tx, s *Store) error {
	rows, err := tx.QueryContext(ctx, `SELECT network, ipv4 FROM allocations`)
	if err != nil {
		return err
	}
	type row struct{ network, ipv4 string }
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.network, &r.ipv4); err != nil {
			rows.Close()
			return err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range all {
		a, err := netip.ParseAddr(r.ipv4)
		if err != nil || !a.Is4() {
			return fmt.Errorf("allocation %s in network %s is not an IPv4 address", r.ipv4, r.network)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE allocations SET v4num = ? WHERE network = ? AND ipv4 = ?`), v4Num(a), r.network, r.ipv4); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `CREATE UNIQUE INDEX allocations_v2_v4num ON allocations (network, v4num)`)
	return err
}

// releaseOrphans fills the new columns for allocations made before
// migration 4: the owner's e-mail and host from their peer, and, for those
// without a peer (leaked by earlier versions), a grace starting now.
func releaseOrphans(ctx context.Context, tx *sql.Tx, s *Store) error {
	if _, err := tx.ExecContext(ctx, `UPDATE allocations SET
  email = COALESCE((SELECT p.email FROM peers p WHERE p.subject = allocations.subject AND p.network = allocations.network AND p.device = allocations.device), ''),
  hostname = COALESCE((SELECT p.hostname FROM peers p WHERE p.subject = allocations.subject AND p.network = allocations.network AND p.device = allocations.device), '')`); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, s.q(`UPDATE allocations SET released_at = ?, released_why = ? WHERE NOT EXISTS
  (SELECT 1 FROM peers p WHERE p.subject = allocations.subject AND p.network = allocations.network AND p.device = allocations.device)`), s.now().Unix(), StateReleased)
	return err
}

// SetClock replaces time.Now for the allocation lifecycle (tests).
// migrate brings the store to the last version of list, one migration at
// a time in order, each in its own transaction: a failure leaves the store
// at the last version that applied. A store newer than list is refused.
func (s *Store) migrate(ctx context.Context, list []migration) error {
	for i, m := range list {
		if m.version != i+1 {
			return fmt.Errorf("migrate: migration %d of the list has version %d: versions must run 1, 2, 3... in order", i+1, m.version)
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if s.postgres {
		// Two gateways starting at once must not both run a migration.
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(74110001)`); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(74110001)`)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if latest := len(list); current > latest {
		return fmt.Errorf("migrate: the store has schema version %d, newer than this gateway knows (%d): upgrade the gateway, or point it at another store", current, latest)
	}
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.postgres {
		id = "BIGSERIAL PRIMARY KEY"
	}
	for _, m := range list[current:] {
		if err := s.apply(ctx, conn, m, id); err != nil {
			return fmt.Errorf("migrate to %d: %w", m.version, err)
		}
	}
	return nil
}

// apply runs m and records its version in one transaction.
func (s *Store) apply(ctx context.Context, conn *sql.Conn, m migration, id string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range strings.Split(strings.ReplaceAll(m.sql, "{{ID}}", id), ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if m.hook != nil {
		if err := m.hook(ctx, tx, s); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), m.version, time.Now().Unix()); err != nil {
		return err
	}
	return tx.Commit()
}
