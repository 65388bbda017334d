package auditcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.Local)
	cases := map[string]time.Time{
		"":                     {},
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"2026-11-01":           time.Date(2026, 11, 1, 0, 0, 0, 0, time.Local),
		"2026-11-01T08:00:00Z": time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC),
	}
	for in, want := range cases {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q -> %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "7dd", "d", "2026-13-01"} {
		if _, err := ParseSince(bad, now); err == nil || !strings.Contains(err.Error(), "--since") {
			t.Errorf("%q: error %v, want one naming --since", bad, err)
		}
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"24h", "7d", "2026-11-01", "2026-11-01T08:00:00Z", "x", "-1d"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSince(s, now)
		if err == nil && s != "" && got.IsZero() {
			t.Fatalf("%q parsed to the zero time without error", s)
		}
	})
}

// The command reads a real store: --user finds entries by subject and by
// e-mail (a login names both), --json is {schema, records}, the table has a header.
func TestAuditCommandOnAStore(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "gw.db")
	cfgPath := filepath.Join(dir, "gw.yaml")
	doc := strings.Replace(config.Example, "store: /var/lib/clearpath-gateway/gateway.db", "store: "+dbPath, 1)
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []store.AuditRecord{
		{Actor: "sub-a", Action: "login", Subject: "sub-a", Email: "alice@example.com", Remote: "198.51.100.2:1"},
		{Actor: "sub-a", Action: "register", Subject: "sub-a", Network: "eng"},
		{Actor: "gateway", Action: "expire", Subject: "sub-a", Network: "eng"},
		{Actor: "sub-b", Action: "login", Subject: "sub-b", Email: "bob@example.com"},
	} {
		if err := st.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	var out bytes.Buffer
	streams := cmdutil.Test(&out, &out)
	if err := Run(ctx, &Options{IO: streams, ConfigPath: cfgPath, User: "alice", JSON: true, Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	var listed struct {
		Schema  string              `json:"schema"`
		Records []store.AuditRecord `json:"records"`
	}
	err = json.Unmarshal(out.Bytes(), &listed)
	recs := listed.Records
	if err != nil || listed.Schema != "clearpath.audit/v1" || len(recs) != 3 || recs[2].Action != "expire" {
		t.Fatalf("alice's entries: %v %s", err, out.String())
	}
	out.Reset()
	if err := Run(ctx, &Options{IO: streams, ConfigPath: cfgPath, Action: "login", Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "TIME") || strings.Count(s, "login") != 2 || !strings.Contains(s, "bob@example.com") {
		t.Errorf("table:\n%s", s)
	}
}

// The flags reach the run hook; a negative --limit is refused by Run.
func TestAuditOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"audit", "--since", "7d", "--user", "alice", "--action", "revoke", "--limit", "5", "--json", "-c", "/tmp/gw.yaml"})
	if err := root.Execute(); err != nil || got.Since != "7d" || got.User != "alice" || got.Action != "revoke" || got.Limit != 5 || !got.JSON || got.ConfigPath != "/tmp/gw.yaml" {
		t.Fatalf("audit: %v %+v", err, got)
	}
	if err := Run(context.Background(), &Options{Limit: -1, Now: time.Now}); err == nil || !strings.Contains(err.Error(), "--limit -1") {
		t.Errorf("--limit -1: %v", err)
	}
}
