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
	return open(ctx, dsn, migrations)
}

// open is Open migrating with list (a prefix of migrations in tests, to
// make a store of an older schema).
func open(ctx context.Context, dsn string, list []migration) (*Store, error) {
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
	if err := s.migrate(ctx, list); err != nil {
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

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

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
