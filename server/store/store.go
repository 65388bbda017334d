// Package store keeps the gateway's state: network keys, address
// allocations, peers and the audit log. SQLite (embedded, pure Go) is the
// default; a postgres:// DSN lets several gateways share users and addresses.
// Both run the same schema and the same versioned migrations.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite", no cgo
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// PostgresMaxConns is how many connections one gateway opens to PostgreSQL.
const PostgresMaxConns = 16

// Store is a handle on the gateway database.
type Store struct {
	db       *sql.DB
	postgres bool
	nonces   atomic.Uint64 // nonces recorded, to purge old ones now and then
	// clock and grace drive the allocation lifecycle (devices.go).
	clock func() time.Time
	grace atomic.Int64
}

// Open opens (creating if needed) the store named by dsn and migrates it.
// dsn is a SQLite file path or a postgres:// (postgresql://) URL.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	s.grace.Store(int64(DefaultAllocationGrace))
	var err error
	if IsPostgres(dsn) {
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
		if err == nil {
			// Bounded, so that a burst of registrations queues here
			// instead of exhausting the server's max_connections (100
			// by default), which several gateways share.
			s.db.SetMaxOpenConns(PostgresMaxConns)
			s.db.SetMaxIdleConns(PostgresMaxConns)
		}
	} else {
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create store directory: %w", err)
			}
		}
		if err := createPrivate(dsn); err != nil {
			return nil, err
		}
		// WAL and a busy timeout let readers proceed while the single writer
		// connection holds the write lock.
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate")
		if err == nil {
			s.db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if !s.postgres {
		// SQLite gives -wal and -shm the main file's mode; make sure.
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Chmod(dsn+suffix, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.db.Close()
				return nil, fmt.Errorf("store %s%s: %w", dsn, suffix, err)
			}
		}
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Postgres reports whether the store is PostgreSQL.
func (s *Store) Postgres() bool { return s.postgres }

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

type migration struct {
	version int
	sql     string // {{ID}} becomes the dialect's auto-increment key column
}

var migrations = []migration{
	{1, `
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
`},
	// 2: one peer per (user, device, network). A device keeps its address
	// across key rotations; the per-session preshared key and the
	// registration nonces (replay protection shared by every gateway on
	// the store) are kept too. v4num (the IPv4 address as a number) lets
	// the allocator find the next free address with an index instead of
	// reading the whole pool; migrationHooks[2] fills it for old rows.
	{2, `
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
`},
}

// migrationHooks run inside a migration's transaction after its SQL, for
// steps SQL cannot express the same way in both dialects.
var migrationHooks = map[int]func(ctx context.Context, tx *sql.Tx, s *Store) error{
	2: fillV4Num,
}

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

func (s *Store) migrate(ctx context.Context) error {
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
	if latest := migrations[len(migrations)-1].version; current > latest {
		return fmt.Errorf("migrate: the store has schema version %d, newer than this gateway knows (%d): upgrade the gateway", current, latest)
	}
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.postgres {
		id = "BIGSERIAL PRIMARY KEY"
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to %d: %w", m.version, err)
		}
		for _, stmt := range strings.Split(strings.ReplaceAll(m.sql, "{{ID}}", id), ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("migrate to %d: %w", m.version, err)
			}
		}
		if hook := migrationHooks[m.version]; hook != nil {
			if err := hook(ctx, tx, s); err != nil {
				tx.Rollback()
				return fmt.Errorf("migrate to %d: %w", m.version, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), m.version, time.Now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to %d: %w", m.version, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to %d: %w", m.version, err)
		}
	}
	return nil
}

// SchemaVersion returns the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// NetworkKey returns the private key of network, storing gen()'s key the
// first time. Several gateways sharing a store agree on one key.
func (s *Store) NetworkKey(ctx context.Context, network string, gen func() (string, error)) (string, error) {
	var key string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT private_key FROM network_keys WHERE network = ?`), network).Scan(&key)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read key of network %s: %w", network, err)
	}
	key, err = gen()
	if err != nil {
		return "", err
	}
	// ON CONFLICT DO NOTHING: if another gateway won the race, read its key.
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO network_keys (network, private_key, created_at) VALUES (?, ?, ?) ON CONFLICT (network) DO NOTHING`), network, key, time.Now().Unix()); err != nil {
		return "", fmt.Errorf("store key of network %s: %w", network, err)
	}
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT private_key FROM network_keys WHERE network = ?`), network).Scan(&key); err != nil {
		return "", fmt.Errorf("read key of network %s: %w", network, err)
	}
	return key, nil
}

// IsPostgres reports whether dsn names a PostgreSQL store (else a SQLite file).
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// createPrivate creates the SQLite file path 0600 if it does not exist, so
// that the store (every network's private key) is never readable by others,
// whatever the umask; SQLite then creates its -wal and -shm files with the
// same mode.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	return f.Close()
}
