package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// complete runs cobra's __complete as the shell scripts do and returns
// the candidates (the last line, the directive, dropped).
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	out, _ := runGW(t, append([]string{"__complete"}, args...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var got []string
	for _, l := range lines {
		if !strings.HasPrefix(l, ":") && !strings.HasPrefix(l, "Completion ended") && l != "" {
			got = append(got, l)
		}
	}
	return got
}

// Networks come from the file the command reads, users and devices from
// its store; enable offers the disabled users; nothing creates a store.
func TestDynamicCompletion(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "gw.db")
	cfgPath := filepath.Join(dir, "gw.yaml")
	doc := strings.Replace(config.Example, "store: /var/lib/clearpath-gateway/gateway.db", "store: "+dbPath, 1)
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := complete(t, "peers", "list", "-c", cfgPath, "--user", ""); len(got) != 0 {
		t.Errorf("users without a store: %v", got)
	}
	if _, err := os.Stat(dbPath); err == nil {
		t.Fatal("completion created the store")
	}
	if got := strings.Join(complete(t, "peers", "list", "-c", cfgPath, "--network", ""), ","); got != "eng,ops" {
		t.Errorf("--network: %q", got)
	}
	if got := strings.Join(complete(t, "explain", "--config", cfgPath, "--network", "o"), ","); got != "ops" {
		t.Errorf("explain --network o: %q", got)
	}

	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, u := range []struct{ sub, email, dev string }{{"sub-a", "alice@example.com", "laptop"}, {"sub-a", "alice@example.com", "phone"}, {"sub-b", "bob@example.com", "ci"}} {
		a, err := st.AllocateDevice(ctx, store.AllocRequest{Subject: u.sub, Network: "eng", Device: u.dev, Pool4: netip.MustParsePrefix("100.64.0.0/24")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutPeer(ctx, store.Peer{ID: "p" + u.dev, Subject: u.sub, Email: u.email, Network: "eng", Device: u.dev, PublicKey: "k" + u.dev, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Addr: a}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DisableUser(ctx, "carol@example.com", "left", "root"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"peers", "list", "-c", cfgPath, "--user", ""}, "alice@example.com,bob@example.com"},
		{[]string{"users", "disable", "-c", cfgPath, "b"}, "bob@example.com"},
		{[]string{"users", "enable", "-c", cfgPath, ""}, "carol@example.com"},
		{[]string{"peers", "revoke", "-c", cfgPath, ""}, "alice@example.com,bob@example.com"},
		{[]string{"devices", "free", "-c", cfgPath, "--user", "alice@example.com", "--device", ""}, "laptop,phone"},
		{[]string{"audit", "-c", cfgPath, "--action", "re"}, "register,refresh,revoke,refuse,reload"},
	} {
		if got := strings.Join(complete(t, c.args...), ","); got != c.want {
			t.Errorf("%v: %q, want %q", c.args, got, c.want)
		}
	}
}
