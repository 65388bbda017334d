package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testpg"
)

// freshStores runs f against SQLite and a real PostgreSQL; each call of
// dsn names a new, empty store (a new file; a new database on one server).
func freshStores(t *testing.T, f func(t *testing.T, dsn func() string)) {
	t.Run("sqlite", func(t *testing.T) {
		dir, n := t.TempDir(), 0
		f(t, func() string { n++; return filepath.Join(dir, fmt.Sprintf("gw%d.db", n)) })
	})
	t.Run("postgres", func(t *testing.T) {
		base := testpg.Start(t)
		admin, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Close() })
		n := 0
		f(t, func() string {
			n++
			name := fmt.Sprintf("gw%d", n)
			if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
				t.Fatal(err)
			}
			return strings.Replace(base, "/postgres?", "/"+name+"?", 1)
		})
	})
}

// openAt opens dsn migrated only up to version (0: just the version table),
// as a gateway of that schema left it.
func openAt(t *testing.T, dsn string, version int) *Store {
	t.Helper()
	s, err := open(context.Background(), dsn, migrations[:version])
	if err != nil {
		t.Fatalf("open at schema %d: %v", version, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The list is the one history of the schema: versions 1, 2, 3... in order,
// nothing registered from elsewhere, and migrate refuses a list that is
// not (a second "version 5" appended by a merge fails every Open).
func TestMigrationListIsOrdered(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Fatalf("migrations[%d] has version %d, want %d", i, m.version, i+1)
		}
		if strings.TrimSpace(m.sql) == "" && m.hook == nil {
			t.Errorf("migration %d does nothing", m.version)
		}
	}
	bad := append(append([]migration{}, migrations...), migration{version: len(migrations), sql: "SELECT 1"})
	_, err := open(context.Background(), filepath.Join(t.TempDir(), "gw.db"), bad)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("has version %d", len(migrations))) {
		t.Fatalf("a list with a repeated version: %v, want it refused naming the version", err)
	}
}

// A store left at each older version (with a user's address and device,
// and the warning sent about it where the schema had warnings) migrates to
// the newest, in order, keeping what it held.
func TestEveryOlderVersionMigratesToTheNewest(t *testing.T) {
	latest := len(migrations)
	freshStores(t, func(t *testing.T, dsn func() string) {
		ctx := context.Background()
		for from := 0; from < latest; from++ {
			t.Run(fmt.Sprint("from ", from), func(t *testing.T) {
				d := dsn()
				old := openAt(t, d, from)
				if v, err := old.SchemaVersion(ctx); err != nil || v != from {
					t.Fatalf("schema version %d (%v), want %d", v, err, from)
				}
				if from >= 1 {
					// Columns of schema 1, which every later schema keeps.
					if _, err := old.db.ExecContext(ctx, old.q(`INSERT INTO allocations (subject, network, ipv4, ipv6, created_at) VALUES ('alice', 'eng', '100.64.0.2', 'fd00:64::2', 1)`)); err != nil {
						t.Fatal(err)
					}
					if _, err := old.db.ExecContext(ctx, old.q(`INSERT INTO peers (id, subject, network, public_key, hostname, created_at, expires_at) VALUES ('p-alice', 'alice', 'eng', 'key-alice', 'lap', 1, 9999999999)`)); err != nil {
						t.Fatal(err)
					}
				}
				if from >= 3 {
					if _, err := old.MarkWarned(ctx, "p-alice", "unused", time.Unix(1, 0)); err != nil {
						t.Fatal(err)
					}
				}
				old.Close()

				s := mustOpen(t, d)
				if v, err := s.SchemaVersion(ctx); err != nil || v != latest {
					t.Fatalf("schema version %d (%v) after migrating, want %d", v, err, latest)
				}
				var applied []int
				rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var v int
					rows.Scan(&v)
					applied = append(applied, v)
				}
				rows.Close()
				if len(applied) != latest || applied[0] != 1 || applied[latest-1] != latest {
					t.Errorf("versions recorded %v, want 1..%d each once", applied, latest)
				}
				if from == 0 {
					return
				}
				p, err := s.PeerByID(ctx, "p-alice")
				if err != nil || p.Addr.V4.String() != "100.64.0.2" || p.Hostname != "lap" {
					t.Fatalf("alice's peer after migrating from %d: %+v %v", from, p, err)
				}
				devs, err := s.Devices(ctx, "eng")
				if err != nil || len(devs) != 1 || devs[0].State != StateLive {
					t.Errorf("devices after migrating from %d: %+v %v", from, devs, err)
				}
				if w, err := s.Warned(ctx); err != nil || (from >= 3) != w["p-alice"]["unused"] {
					t.Errorf("warnings after migrating from %d: %v %v", from, w, err)
				}
			})
		}
	})
}

// A store written by a newer gateway (a version this one does not know) is
// refused with what to do, and left as it was.
func TestNewerStoreIsRefused(t *testing.T) {
	freshStores(t, func(t *testing.T, dsn func() string) {
		ctx := context.Background()
		d := dsn()
		s := mustOpen(t, d)
		newer := len(migrations) + 1
		if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 1)`), newer); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err := Open(ctx, d)
		want := fmt.Sprintf("schema version %d, newer than this gateway knows (%d): upgrade the gateway", newer, len(migrations))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("opening a store of version %d: %v, want an error saying %q", newer, err, want)
		}
		// Nothing was changed: the versions recorded are as they were.
		driver, src := "sqlite", d
		if IsPostgres(d) {
			driver = "pgx"
		}
		db, err := sql.Open(driver, src)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n, top int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &top); err != nil {
			t.Fatal(err)
		}
		if n != newer || top != newer {
			t.Errorf("after the refusal: %d versions up to %d, want %d up to %d", n, top, newer, newer)
		}
	})
}
