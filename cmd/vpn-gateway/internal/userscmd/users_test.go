package userscmd

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

// The USER argument and the flags reach each subcommand's run hook.
func TestUsersOptions(t *testing.T) {
	var got *Options
	hook := func(_ context.Context, o *Options) error { got = o; return nil }
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewDisableCmd(f, hook), NewEnableCmd(f, hook), NewListCmd(f, hook))
	root.SetArgs([]string{"disable", "alice", "--reason", "left", "--no-notify", "-c", "/tmp/gw.yaml"})
	if err := root.Execute(); err != nil || got.User != "alice" || got.Reason != "left" || !got.NoNotify || got.ConfigPath != "/tmp/gw.yaml" {
		t.Fatalf("disable: %v %+v", err, got)
	}
	root.SetArgs([]string{"enable", "bob"})
	if err := root.Execute(); err != nil || got.User != "bob" || got.Reason != "" {
		t.Fatalf("enable: %v %+v", err, got)
	}
	root.SetArgs([]string{"list", "--json"})
	if err := root.Execute(); err != nil || !got.JSON || got.User != "" {
		t.Fatalf("list: %v %+v", err, got)
	}
	got = nil
	root.SetArgs([]string{"disable"})
	if err := root.Execute(); err == nil || got != nil {
		t.Errorf("disable without USER: %v", err)
	}
}

// disable revokes the user's key and refuses them (by subject and e-mail),
// enable lifts it, a second enable says they are not disabled.
func TestDisableEnable(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "gw.db")
	cfgPath := filepath.Join(dir, "gw.yaml")
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
	a, err := st.AllocateDevice(ctx, store.AllocRequest{Subject: "sub-a", Network: "eng", Device: "laptop", Pool4: netip.MustParsePrefix("100.64.0.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.PutPeer(ctx, store.Peer{ID: "p1", Subject: "sub-a", Email: "alice@example.com", Network: "eng", Device: "laptop", PublicKey: "k1", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Addr: a}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var out bytes.Buffer
	o := &Options{IO: cmdutil.Test(&out, &out), ConfigPath: cfgPath, User: "alice", Reason: "left"}
	if err := Disable(ctx, o); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "Disabled alice@example.com (sub-a).") || !strings.Contains(s, "Revoked peer p1") {
		t.Errorf("disable said:\n%s", s)
	}
	st, _ = store.Open(ctx, dbPath)
	peers, _ := st.Peers(ctx, "")
	dis, _ := st.DisabledUsers(ctx)
	st.Close()
	if len(peers) != 0 || len(dis) != 2 {
		t.Errorf("after disable: peers %+v, disabled %+v", peers, dis)
	}
	out.Reset()
	if err := List(ctx, &Options{IO: cmdutil.Test(&out, &out), ConfigPath: cfgPath, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var listed struct {
		Users []store.DisabledUser `json:"users"`
	}
	if err := json.Unmarshal(out.Bytes(), &listed); err != nil || len(listed.Users) != 2 || listed.Users[0].Reason != "left" {
		t.Errorf("list --json: %v\n%s", err, out.String())
	}
	o = &Options{IO: cmdutil.Test(&out, &out), ConfigPath: cfgPath, User: "alice@example.com"}
	if err := Enable(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := Enable(ctx, o); err == nil || !strings.Contains(err.Error(), "alice@example.com is not disabled") {
		t.Errorf("second enable: %v", err)
	}
}
