package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/tstest/bundletest"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// A support bundle of a machine whose agent status, log and routes hold
// planted secrets: user names, e-mail, tokens, WireGuard and PEM keys,
// public IPv4 and IPv6 addresses. None of them is in the bundle; the
// private addresses that make up the routing problem are, the snapshot
// still loads, and the same public address gets the same stand-in. The
// bundle never overwrites a file nor follows a planted symlink.
func TestDoctorBundleRedacts(t *testing.T) {
	ns := netnstest.New(t)
	e := env(ns)
	ns.IPIn("route", "add", "203.0.113.0/24", "via", "10.1.2.1")
	ns.IPIn("-6", "route", "add", "2a00:1450::/32", "via", "fd01:2::1")
	t.Setenv("SUDO_USER", "carol")
	priv, _ := wgtypes.GeneratePrivateKey()
	gwKey, _ := wgtypes.GeneratePrivateKey()
	psk, _ := wgtypes.GenerateKey()
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImVtYWlsIjoiYSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	hexKey := strings.Repeat("3f9a", 16)
	secrets := []string{"Alice Smith", "alice.smith@corp.example", "asmith", "carol", "dev-7f3a9c2e", priv.PublicKey().String(),
		gwKey.PublicKey().String(), psk.String(), jwt, "8xLOxBtZp8Qw", hexKey, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
		"203.0.113.77", "203.0.113.0", "2a00:1450:4001:81c::200e", "2a00:1450::", "8.8.8.8", "opaque-bearer-abc123"}
	e.Agent = func(context.Context) (*control.Status, error) {
		return &control.Status{State: control.StateDown, Server: "https://203.0.113.77:8443", User: "Alice Smith",
			Email: "alice.smith@corp.example", DeviceID: "dev-7f3a9c2e", PublicKey: priv.PublicKey().String(),
			GatewayPublicKey: gwKey.PublicKey().String(), Endpoint: "203.0.113.77:51820", Addresses: []string{"100.64.0.2/32"},
			Login: &control.Login{Server: "https://203.0.113.77:8443", User: "asmith"}}, nil
	}
	log := strings.Join([]string{
		`time=2026-12-06T19:01:55.837Z level=INFO msg="tunnel up" interface=cp0 addresses="[100.64.0.2/32 fd00:64::2/128]" endpoint=203.0.113.77:51820 lan=10.1.2.10`,
		`time=2026-12-06T19:01:56Z level=DEBUG msg=request token=` + jwt + ` user=alice.smith@corp.example`,
		`time=2026-12-06T19:01:57Z level=DEBUG msg=refresh "refresh_token":"8xLOxBtZp8Qw" psk=` + psk.String(),
		`Authorization: Bearer opaque-bearer-abc123`,
		`uapi private_key=` + hexKey,
		`dns 8.8.8.8 and 2a00:1450:4001:81c::200e, config /home/carol/.config/clearpath for Carol`,
		"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
	}, "\n")
	e.AgentLog = func() ([]byte, error) { return []byte(log), nil }

	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	var out bytes.Buffer
	err := Run(context.Background(), &out, e, &Options{Bundle: path})
	var ee *cmdutil.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.Code == 2) {
		t.Fatalf("doctor --bundle: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "support bundle written to "+path) {
		t.Errorf("doctor does not say where the bundle is:\n%s", out.String())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle file: %v %v, want mode 0600", fi, err)
	}
	files := bundletest.Read(t, path)
	for _, name := range []string{"README.txt", "report.json", "report.txt", "snapshot.json", "status.json", "agent.log", "versions.txt"} {
		if _, ok := files[name]; !ok {
			t.Errorf("bundle lacks %s (has %v)", name, files)
		}
	}
	for name, body := range files {
		for _, s := range secrets {
			if strings.Contains(strings.ToLower(body), strings.ToLower(s)) {
				t.Errorf("%s still holds %q", name, s)
			}
		}
	}
	if !strings.Contains(files["agent.log"], "lan=10.1.2.10") || !strings.Contains(files["agent.log"], "fd00:64::2/128") {
		t.Errorf("private addresses must stay:\n%s", files["agent.log"])
	}
	var snap routes.Snapshot
	if err := json.Unmarshal([]byte(files["snapshot.json"]), &snap); err != nil {
		t.Fatalf("the redacted snapshot does not load: %v", err)
	}
	if !strings.Contains(files["snapshot.json"], `"240.0.0.`) || !strings.Contains(files["snapshot.json"], `"100::`) {
		t.Errorf("public prefixes should have stand-ins:\n%s", files["snapshot.json"])
	}
	var rep analysis.Report
	if err := json.Unmarshal([]byte(files["report.json"]), &rep); err != nil || rep.Schema != analysis.Schema {
		t.Errorf("report.json: %v", err)
	}
	// 203.0.113.77 is one stand-in in status and log alike.
	var st control.Status
	json.Unmarshal([]byte(files["status.json"]), &st)
	if ep, _, _ := strings.Cut(st.Endpoint, ":"); ep == "" || !strings.Contains(files["agent.log"], "endpoint="+st.Endpoint) {
		t.Errorf("the endpoint's stand-in differs between status (%s) and log:\n%s", st.Endpoint, files["agent.log"])
	}
	t.Logf("agent.log as bundled:\n%s", files["agent.log"])

	// Never over an existing file: exit 2, the file unchanged.
	before, _ := os.ReadFile(path)
	err = Run(context.Background(), &out, e, &Options{Bundle: path})
	if !errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(ee.Error(), "exists") {
		t.Fatalf("second --bundle to the same file: want exit 2, got %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("an existing file was overwritten")
	}
	// Nor through a symlink planted where the bundle goes.
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	link := filepath.Join(t.TempDir(), "link.tar.gz")
	os.Symlink(victim, link)
	if err := Run(context.Background(), &out, e, &Options{Bundle: link}); !errors.As(err, &ee) || ee.Code != 2 {
		t.Fatalf("--bundle through a symlink: want exit 2, got %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatal("the symlink's target was written")
	}
}
