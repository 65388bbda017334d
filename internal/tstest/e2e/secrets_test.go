package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// Against the real gateway, Dex and admin binaries:
//   - a registration whose host name carries a terminal escape sequence
//     (any local user of the client can choose the host name) is refused
//     with a 400 naming the field, and nothing reaches the device or
//     `peers list` (on main it was stored and printed raw to the admin);
//   - a revoked device's address is kept for it (devices list: revoked,
//     freed-at), it gets it back when it returns, and `devices free
//     --revoke` frees it at once, audited (on main allocations were never
//     freed and no command existed).
func TestHostnameAndAddressesAtTheGateway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	tok, err := e.Dex.Login(ctx, dex.ClientID, "alice")
	must(t, err)
	sub := subjectOf(t, tok.IDToken)
	eng := e.networkKey(t, e.EngIface)
	hc := e.Laptop.HTTPClient(10 * time.Second)
	register := func(device, host string, key wgtypes.Key) (int, api.Error, *api.PeerConfig) {
		claims := api.RegisterClaims{Subject: sub, Network: "eng", DeviceID: device, Hostname: host, OS: "linux"}
		code, apiErr, _, pc := postRegistration(t, hc, stack.ServerURL, tok.IDToken, sealFor(t, eng, claims, key))
		return code, apiErr, pc
	}

	evil, _ := wgtypes.GeneratePrivateKey()
	code, apiErr, _ := register("evil-box", "box\x1b]0;owned\x07\x1b[2J", evil)
	if code != http.StatusBadRequest || !strings.HasPrefix(apiErr.Message, "hostname: character U+001B") {
		t.Fatalf("escape sequence in the host name: %d %+v, want 400 naming hostname", code, apiErr)
	}
	if got := wgDump(t, e.GW, e.EngIface); len(got) != 0 {
		t.Errorf("a refused registration reached the device: %+v", got)
	}

	key, _ := wgtypes.GeneratePrivateKey()
	code, apiErr, pc := register("ci-runner", "ci-runner-1", key)
	if code != http.StatusOK {
		t.Fatalf("registration: %d %+v", code, apiErr)
	}
	addrs := strings.Join(pc.Addresses, ",")
	if out := e.adminOK(t, "peers", "list"); strings.ContainsRune(out, 0x1b) || strings.Contains(out, "evil-box") {
		t.Errorf("peers list:\n%q", out)
	}
	e.adminOK(t, "peers", "revoke", "alice@example.com", "--reason", "CI job done")
	var listed struct {
		Devices []struct {
			State     string     `json:"state"`
			Hostname  string     `json:"hostname"`
			Addresses []string   `json:"addresses"`
			FreedAt   *time.Time `json:"freed_at"`
		} `json:"devices"`
	}
	must(t, json.Unmarshal([]byte(e.adminOK(t, "devices", "list", "--json", "--user", "alice@example.com")), &listed))
	devs := listed.Devices
	if len(devs) != 1 || devs[0].State != "revoked" || devs[0].FreedAt == nil || devs[0].Hostname != "ci-runner-1" || strings.Join(devs[0].Addresses, ",") == "" {
		t.Fatalf("devices list after the revocation: %+v", devs)
	}
	if d := time.Until(*devs[0].FreedAt); d < 6*24*time.Hour || d > 7*24*time.Hour {
		t.Errorf("freed in %s, want the 7-day grace", d)
	}
	t.Logf("DEVICES after revoke:\n%s", e.adminOK(t, "devices", "list"))

	// Back within the grace period: the same addresses.
	code, apiErr, pc = register("ci-runner", "ci-runner-1", key)
	if code != http.StatusOK || strings.Join(pc.Addresses, ",") != addrs {
		t.Fatalf("the device back within its grace: %d %+v %v, want %s", code, apiErr, pc, addrs)
	}
	out, status := e.admin(t, "devices", "free", "--user", "alice@example.com", "--device", "ci-runner")
	if status == 0 || !strings.Contains(out, "holds a valid key") || !strings.Contains(out, "--revoke") {
		t.Errorf("devices free on a live device: exit %d\n%s", status, out)
	}
	out = e.adminOK(t, "devices", "free", "--user", "alice@example.com", "--device", "ci-runner", "--revoke")
	t.Logf("FREE:\n%s", out)
	if _, ok := waitUntil(3*time.Second, func() bool { return len(wgDump(t, e.GW, e.EngIface)) == 0 }); !ok {
		t.Errorf("the freed device's key is still on %s", e.EngIface)
	}
	if list := e.adminOK(t, "devices", "list"); !strings.Contains(list, "(no devices)") {
		t.Errorf("devices list after free:\n%s", list)
	}
	recs := e.auditLog(t, "--user", "alice@example.com")
	if !hasAudit(recs, "free", "ci-runner", "freed by an administrator") || !hasAudit(recs, "revoke", "to free its addresses") {
		t.Errorf("audit: %+v", recs)
	}
}
