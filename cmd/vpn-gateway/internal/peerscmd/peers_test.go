package peerscmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// storeWith writes a configuration whose store (SQLite) and admin socket
// are in a temp dir, and registers the peers (subject, e-mail, network).
func storeWith(t *testing.T, peers ...[3]string) (cfgPath, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "gw.db")
	cfgPath = filepath.Join(dir, "gw.yaml")
	doc := strings.Replace(config.Example, "store: /var/lib/clearpath-gateway/gateway.db", "store: "+dbPath, 1)
	doc += "\nadmin_socket: " + filepath.Join(dir, "admin.sock") + "\n"
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pool := netip.MustParsePrefix("100.64.0.0/24")
	now := time.Now()
	for i, p := range peers {
		dev := "dev" + string(rune('a'+i))
		a, err := st.AllocateDevice(ctx, store.AllocRequest{Subject: p[0], Network: p[2], Device: dev, Pool4: pool})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutPeer(ctx, store.Peer{ID: "p-" + dev, Subject: p[0], Email: p[1], Network: p[2], Device: dev, PublicKey: "key-" + dev,
			Hostname: "host-" + dev, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Addr: a}); err != nil {
			t.Fatal(err)
		}
	}
	return cfgPath, dbPath
}

// The flags and the USER argument reach the run hooks; revoke with
// neither a USER nor --peer is refused before the hook runs.
func TestPeersOptions(t *testing.T) {
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	var rev *RevokeOptions
	root := cmdutil.TestRoot(f, NewRevokeCmd(f, func(_ context.Context, o *RevokeOptions) error { rev = o; return nil }))
	root.SetArgs([]string{"-c", "/tmp/gw.yaml", "revoke", "alice", "--network", "eng", "--reason", "left", "--no-notify", "--peer", "p1,p2"})
	if err := root.Execute(); err != nil || rev.User != "alice" || rev.Network != "eng" || rev.Reason != "left" || !rev.NoNotify ||
		strings.Join(rev.PeerIDs, ",") != "p1,p2" || rev.ConfigPath != "/tmp/gw.yaml" {
		t.Fatalf("revoke: %v %+v", err, rev)
	}
	rev = nil
	f2 := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root = cmdutil.TestRoot(f2, NewRevokeCmd(f2, func(_ context.Context, o *RevokeOptions) error { rev = o; return nil }))
	root.SetArgs([]string{"revoke"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "name a USER or --peer ID") || rev != nil {
		t.Errorf("revoke with no target: %v (hook ran: %v)", err, rev != nil)
	}
	var list *ListOptions
	root = cmdutil.TestRoot(f, NewListCmd(f, func(_ context.Context, o *ListOptions) error { list = o; return nil }))
	root.SetArgs([]string{"list", "--network", "ops", "--user", "bob", "--json"})
	if err := root.Execute(); err != nil || list.Network != "ops" || list.User != "bob" || !list.JSON || list.Now == nil {
		t.Fatalf("list: %v %+v", err, list)
	}
}

// peers revoke removes exactly the named user's keys from the store,
// audits each with who ran it, and says no gateway runs here; list then
// shows the others. A name two users share (the part before @) is
// refused and nothing changes.
func TestRevokeThroughTheStore(t *testing.T) {
	cfgPath, dbPath := storeWith(t,
		[3]string{"sub-a", "alice@a.example", "eng"}, [3]string{"sub-a", "alice@a.example", "ops"},
		[3]string{"sub-b", "bob@b.example", "eng"}, [3]string{"sub-c", "alice@c.example", "eng"})
	ctx := context.Background()
	var out bytes.Buffer
	io := cmdutil.Test(&out, &out)

	err := Revoke(ctx, &RevokeOptions{IO: io, ConfigPath: cfgPath, User: "alice"})
	if err == nil || !strings.Contains(err.Error(), "matches several users") {
		t.Fatalf("revoke an ambiguous name: %v", err)
	}
	if err := Revoke(ctx, &RevokeOptions{IO: io, ConfigPath: cfgPath, User: "alice@a.example", Reason: "left"}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); strings.Count(s, "Revoked peer") != 2 || !strings.Contains(s, "No gateway runs on this host") {
		t.Errorf("revoke said:\n%s", s)
	}
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := st.Peers(ctx, "")
	recs, _ := st.QueryAudit(ctx, store.AuditQuery{Action: "revoke"})
	st.Close()
	if len(left) != 2 || left[0].Subject == "sub-a" || left[1].Subject == "sub-a" {
		t.Errorf("peers left: %+v", left)
	}
	if len(recs) != 2 || recs[0].Subject != "sub-a" || !strings.HasPrefix(recs[0].Remote, "cli@") || !strings.Contains(recs[0].Detail, "left") {
		t.Errorf("audit: %+v", recs)
	}
	if err := Revoke(ctx, &RevokeOptions{IO: io, ConfigPath: cfgPath, PeerIDs: []string{"p-nope"}}); err == nil || !strings.Contains(err.Error(), "--peer p-nope: no such peer") {
		t.Errorf("revoke an unknown peer: %v", err)
	}

	out.Reset()
	if err := List(ctx, &ListOptions{IO: io, ConfigPath: cfgPath, JSON: true, Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	var listed struct {
		Schema string `json:"schema"`
		Peers  []Peer `json:"peers"`
	}
	if err := json.Unmarshal(out.Bytes(), &listed); err != nil || listed.Schema != "clearpath.peers/v1" || len(listed.Peers) != 2 {
		t.Fatalf("list --json: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := List(ctx, &ListOptions{IO: io, ConfigPath: cfgPath, User: "bob", Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "USER") || !strings.Contains(s, "bob@b.example") || strings.Contains(s, "alice@c.example") {
		t.Errorf("list --user bob:\n%s", s)
	}
}
