package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/metrics"
	"github.com/clearpath-vpn/clearpath/server/store"
)

func configIn(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	doc := strings.Replace(config.Example, "store: /var/lib/clearpath-gateway/gateway.db\nstate_dir: /var/lib/clearpath-gateway\n",
		"store: "+filepath.Join(dir, "gateway.db")+"\nstate_dir: "+dir+"\n", 1) + extra
	return mustParse(t, doc)
}

// The gateway refuses to start on a store or state dir that group or others
// can read, naming the file and the fix. On main it starts and serves every
// network's private key to any local user.
func TestServeRefusesReadableStore(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	cfg := configIn(t, dir, "")
	st, err := store.Open(context.Background(), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := checkSecretFiles(cfg); err != nil {
		t.Fatalf("a private store refused: %v", err)
	}
	os.Chmod(cfg.Store, 0o644) // what main creates
	err = Serve(context.Background(), Options{Config: cfg, Log: slog.New(slog.DiscardHandler)})
	want := "store " + cfg.Store + " is open to group or others (mode 0644) and holds the network keys: run `chmod 600 " + cfg.Store + "`"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Serve on a 0644 store: %v\nwant an error saying %q", err, want)
	}
	os.Chmod(cfg.Store, 0o600)
	os.Chmod(dir, 0o755)
	err = Serve(context.Background(), Options{Config: cfg, Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "state_dir "+dir+" is open to group or others (mode 0755)") || !strings.Contains(err.Error(), "chmod 700 "+dir) {
		t.Fatalf("Serve with a 0755 state dir: %v", err)
	}
}

// A reload whose file changes the PostgreSQL DSN is refused (it needs a
// restart) without writing either password to the log, the audit log or
// the answer. On main both passwords appear in all three.
func TestReloadDoesNotLeakTheDSN(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	running := configIn(t, dir, "")
	st, err := store.Open(ctx, running.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	running.Store = "postgres://clearpath:old-s3cret@db.internal:5432/clearpath?sslmode=require"
	doc := strings.Replace(config.Example, "store: /var/lib/clearpath-gateway/gateway.db",
		"store: postgres://clearpath:new-s3cret@db.internal:5432/clearpath?sslmode=require&password=query-s3cret", 1)
	path := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(path, []byte(doc), 0o600)
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	g := &Gateway{cfg: running, store: st, log: log, configPath: path, networks: map[string]*network{}}
	g.metrics = metrics.New(g)
	g.audit = audit.New(st, log)
	_, err = g.Reload(ctx, "root", "cli@test")
	if err == nil || !strings.Contains(err.Error(), "store: changing it needs a restart") {
		t.Fatalf("reload: %v", err)
	}
	recs, _ := st.QueryAudit(ctx, store.AuditQuery{Action: audit.Reload})
	if len(recs) != 1 {
		t.Fatalf("audit: %+v", recs)
	}
	for where, text := range map[string]string{"error": err.Error(), "log": logBuf.String(), "audit": recs[0].Detail} {
		if strings.Contains(text, "s3cret") {
			t.Errorf("the %s holds a password: %s", where, text)
		}
		if !strings.Contains(text, "clearpath:xxxxx@db.internal:5432") {
			t.Errorf("the %s does not name the store (redacted): %s", where, text)
		}
	}
}

func TestDeviceLimitMessageNamesTheEmailAndTheCommand(t *testing.T) {
	msg := deviceLimitMessage(&auth.Identity{Subject: "CiQwOGE4Njg0Yi1kYjg4", Email: "alice@example.com"}, "eng")
	for _, want := range []string{"user alice@example.com already has 16 live devices in network eng", "vpn-gateway devices free --user alice@example.com --network eng --device ID --revoke", "vpn-gateway devices list --user alice@example.com"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "CiQw") {
		t.Errorf("message names the opaque subject: %s", msg)
	}
}
