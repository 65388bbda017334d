package e2e

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/tstest/bundletest"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// TestDoctorBundleOfALiveSession: `vpn doctor --bundle` with a real agent
// up: the bundle holds the report, snapshot, status, the agent's own log
// and versions, and none of what identifies the user or the gateway as
// the real status shows it (user, e-mail, device id, both WireGuard keys,
// the gateway's public address), while the tunnel and LAN addresses that
// make up a routing problem stay.
func TestDoctorBundleOfALiveSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.Client("bun")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, c, tok)
	raw, err := c.Run(ctxT(t, 10*time.Second), "status", "--json")
	if err != nil {
		t.Fatalf("vpn status: %v\n%s", err, raw)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	secrets := []string{st.User, st.Email, st.DeviceID, st.PublicKey, st.GatewayPublicKey, lab.GWPublicIP4, lab.GWPublicIP6}
	for _, s := range secrets {
		if s == "" {
			t.Fatalf("status lacks a field the test needs: %s", raw)
		}
	}
	path := filepath.Join(e.Dir, "bundle.tar.gz")
	out, err := c.Run(ctxT(t, 30*time.Second), "doctor", "--bundle", path)
	var ee interface{ ExitCode() int }
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() == 2) {
		t.Fatalf("vpn doctor --bundle: %v\n%s", err, out)
	}
	files := bundletest.Read(t, path)
	if !strings.Contains(files["agent.log"], "tunnel up") || !strings.Contains(files["status.json"], `"state": "up"`) {
		t.Fatalf("the bundle lacks the agent's log or status: %v", files)
	}
	for name, body := range files {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s holds %q", name, s)
			}
		}
	}
	for _, keep := range []string{lab.LaptopIP4, c.Iface} {
		if !strings.Contains(files["snapshot.json"], keep) {
			t.Errorf("snapshot.json lost %s", keep)
		}
	}
	t.Logf("%s\nstatus.json as bundled:\n%s", strings.TrimSpace(out), files["status.json"])
	down(t, c)
}
