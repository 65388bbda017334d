package devicescmd

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

// devices list shows live and revoked devices with their e-mail, host,
// addresses, state and when the address is freed, escaping a host name
// with an escape sequence (stored before registrations were checked); devices
// free refuses a live device without --revoke, frees a revoked one now
// and audits it.
func TestDevicesListAndFree(t *testing.T) {
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
	pool := netip.MustParsePrefix("100.64.0.0/24")
	now := time.Now()
	for i, dev := range []string{"laptop", "ci-runner"} {
		a, err := st.AllocateDevice(ctx, store.AllocRequest{Subject: "sub-a", Network: "eng", Device: dev, Pool4: pool})
		if err != nil {
			t.Fatal(err)
		}
		host := "alice-laptop"
		if i == 1 {
			host = "ci\x1b]0;owned\x07"
		}
		p := store.Peer{ID: "p" + dev, Subject: "sub-a", Email: "alice@example.com", Network: "eng", Device: dev, PublicKey: "k" + dev, Hostname: host, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Addr: a}
		if _, err := st.PutPeer(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	st.DeletePeer(ctx, "pci-runner", "")
	st.Close()

	var out bytes.Buffer
	streams := cmdutil.Test(&out, &out)
	if err := List(ctx, &ListOptions{IO: streams, ConfigPath: cfgPath, User: "Alice@Example.com", Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	if strings.ContainsRune(table, 0x1b) || !strings.Contains(table, `ci\x1b]0;owned\a`) {
		t.Errorf("the host name's escape sequence reached the terminal:\n%q", table)
	}
	for _, want := range []string{"USER", "alice@example.com", "laptop", "100.64.0.2", "live", "ci-runner", "revoked"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(table, "in 6d23h") && !strings.Contains(table, "in 7d0h") {
		t.Errorf("the revoked device's address is not freed in 7 days:\n%s", table)
	}
	out.Reset()
	if err := List(ctx, &ListOptions{IO: streams, ConfigPath: cfgPath, JSON: true, Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	var listed struct {
		Schema  string   `json:"schema"`
		Devices []Device `json:"devices"`
	}
	err = json.Unmarshal(out.Bytes(), &listed)
	devs := listed.Devices
	if err != nil || listed.Schema != "clearpath.devices/v1" || len(devs) != 2 || devs[0].FreedAt == nil || devs[0].State != "revoked" || devs[1].FreedAt != nil {
		t.Fatalf("json: %v %s", err, out.String())
	}

	err = Free(ctx, &FreeOptions{IO: streams, ConfigPath: cfgPath, User: "alice@example.com", Device: "laptop", NoNotify: true})
	if err == nil || !strings.Contains(err.Error(), "holds a valid key") || !strings.Contains(err.Error(), "--revoke") {
		t.Fatalf("free a live device: %v", err)
	}
	out.Reset()
	if err := Free(ctx, &FreeOptions{IO: streams, ConfigPath: cfgPath, User: "alice@example.com", Device: "ci-runner", NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Freed 100.64.0.3 of device ci-runner") {
		t.Errorf("free said: %s", out.String())
	}
	st, _ = store.Open(ctx, dbPath)
	defer st.Close()
	left, _ := st.Devices(ctx, "")
	if len(left) != 1 || left[0].Device != "laptop" {
		t.Errorf("left: %+v", left)
	}
	recs, _ := st.QueryAudit(ctx, store.AuditQuery{Action: "free"})
	if len(recs) != 1 || !strings.Contains(recs[0].Detail, "100.64.0.3") || recs[0].Email != "alice@example.com" {
		t.Errorf("audit: %+v", recs)
	}
}

// The flags reach the run hooks; free without --user and --device is
// refused before its hook.
func TestDevicesOptions(t *testing.T) {
	var list *ListOptions
	var free *FreeOptions
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f,
		NewListCmd(f, func(_ context.Context, o *ListOptions) error { list = o; return nil }),
		NewFreeCmd(f, func(_ context.Context, o *FreeOptions) error { free = o; return nil }))
	root.SetArgs([]string{"list", "--network", "eng", "--user", "alice", "--json"})
	if err := root.Execute(); err != nil || list.Network != "eng" || list.User != "alice" || !list.JSON {
		t.Fatalf("list: %v %+v", err, list)
	}
	root.SetArgs([]string{"free", "--user", "alice"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--user USER --device ID") || free != nil {
		t.Fatalf("free without --device: %v", err)
	}
	root.SetArgs([]string{"free", "--user", "alice", "--device", "laptop", "--network", "eng", "--revoke", "--no-notify", "-c", "/tmp/gw.yaml"})
	if err := root.Execute(); err != nil || free.User != "alice" || free.Device != "laptop" || free.Network != "eng" || !free.Revoke || !free.NoNotify || free.ConfigPath != "/tmp/gw.yaml" {
		t.Fatalf("free: %v %+v", err, free)
	}
}
