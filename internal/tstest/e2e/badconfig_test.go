package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// threeNetworks is a gateway configuration with three networks; ports and
// interface names carry the lab's prefix.
func threeNetworks(l *lab.Reference, dir string, opsPort int) string {
	return fmt.Sprintf(`listen: "%s"
endpoint: %s
oidc:
  issuer: http://192.0.2.10:5556/dex
  allow_http: true
  client_id: clearpath
store: %s
state_dir: %s
networks:
  - name: eng
    group: engineering
    interface: %seng
    listen_port: 51820
    pool: [100.64.0.0/24, "fd00:64::/64"]
    allow: [10.10.0.0/16, "fd10:10::/64"]
  - name: ops
    group: ops
    interface: %sops
    listen_port: %d
    pool: [100.65.0.0/24, "fd00:65::/64"]
    allow: [10.20.0.0/16, "fd10:20::/64"]
  - name: qa
    group: qa
    interface: %sqa
    listen_port: 51822
    pool: [100.66.0.0/24]
    allow: [10.20.0.0/16]
`, stack.GatewayListen, lab.GWPublicIP4, filepath.Join(dir, "gw.db"), filepath.Join(dir, "state"), l.Prefix, l.Prefix, opsPort, l.Prefix)
}

// A configuration with mistakes is refused before anything starts, each
// mistake named by its field; a gateway whose second network of three cannot
// come up exits naming it and leaves nothing behind.
func TestBadConfigAndNoHalfStart(t *testing.T) {
	t.Parallel()
	ref := lab.ReferenceT(t, lab.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.yaml")

	bad := strings.NewReplacer(
		"listen_port: 51822", "listen_port: 51820",
		"allow: [10.20.0.0/16]\n", "allow: [10.20.0.0/33]\n",
		"client_id: clearpath", "client_id: clearpath\nkey_ttl: 5s\nlifecycle:\n  warn_before: [1h]\n  webhook: {url: \"ftp://x\"}",
	).Replace(threeNetworks(ref, dir, 51821))
	must(t, os.WriteFile(path, []byte(bad), 0o644))
	out, err := ref.GW.Exec(ctxT(t, 30*time.Second), bins.Gateway, "check", "--config", path)
	if err == nil {
		t.Fatalf("check accepted a bad config:\n%s", out)
	}
	for _, want := range []string{"networks[2].allow[0] (line", "10.20.0.0/33"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// The prefix error stops parsing; fix it to see the rest at once.
	bad = strings.Replace(bad, "10.20.0.0/33", "10.20.0.0/16", 1)
	must(t, os.WriteFile(path, []byte(bad), 0o644))
	out, _ = ref.GW.Exec(ctxT(t, 30*time.Second), bins.Gateway, "serve", "--config", path)
	for _, want := range []string{"key_ttl: 5s is shorter than 10s", "networks[2].listen_port: 51820 is also used by networks[0]", "lifecycle.warn_before[0]: 1h0m0s is not shorter than key_ttl", "lifecycle.webhook.url: \"ftp://x\""} {
		if !strings.Contains(out, want) {
			t.Errorf("serve output lacks %q:\n%s", want, out)
		}
	}

	// Network 2 of 3 cannot get its port: something else holds it.
	before, err := ref.GW.RoutingState(ctxT(t, 5*time.Second))
	must(t, err)
	busy, err := ref.GW.ListenPacket("udp", ":51821")
	must(t, err)
	defer busy.Close()
	must(t, os.WriteFile(path, []byte(threeNetworks(ref, dir, 51821)), 0o644))
	start := time.Now()
	out, err = ref.GW.Exec(ctxT(t, 30*time.Second), bins.Gateway, "serve", "--config", path)
	if err == nil {
		t.Fatalf("serve started with network 2's port taken:\n%s", out)
	}
	t.Logf("serve failed after %v:\n%s", time.Since(start).Round(time.Millisecond), lastLines(out, 4))
	if !strings.Contains(out, "networks[1] (ops)") || !strings.Contains(out, "nothing is left set up") {
		t.Errorf("the error does not name network ops:\n%s", out)
	}
	after, err := ref.GW.RoutingState(ctxT(t, 5*time.Second))
	must(t, err)
	if after != before {
		t.Errorf("a failed start left routes or rules behind:\n--- before\n%s\n--- after\n%s", before, after)
	}
	links, _ := ref.GW.Exec(ctxT(t, 5*time.Second), "ip", "-o", "link", "show")
	if strings.Contains(links, ref.Prefix+"eng") || strings.Contains(links, ref.Prefix+"ops") {
		t.Errorf("a failed start left interfaces behind:\n%s", links)
	}
	if tables, err := ref.GW.Exec(ctxT(t, 5*time.Second), "nft", "list", "tables"); err != nil || strings.Contains(tables, "clearpath_gw") {
		t.Errorf("a failed start left the host guard's nftables table behind (%v):\n%s", err, tables)
	}
	for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if v, _ := ref.GW.Exec(ctxT(t, 5*time.Second), "cat", p); strings.TrimSpace(v) != "0" {
			t.Errorf("%s = %s after a failed start, want the 0 it was", p, v)
		}
	}
	// With the port free it starts, all three networks up.
	busy.Close()
	p, err := ref.GW.Start("gateway", bins.Gateway, "serve", "--config", path)
	must(t, err)
	if _, ok := waitUntil(10*time.Second, func() bool {
		l, _ := ref.GW.Exec(ctxT(t, 5*time.Second), "ip", "-o", "link", "show")
		return strings.Contains(l, ref.Prefix+"eng") && strings.Contains(l, ref.Prefix+"ops") && strings.Contains(l, ref.Prefix+"qa")
	}); !ok {
		t.Errorf("three networks not up:\n%s", p.Log())
	}
	must(t, p.Stop(10*time.Second))
	// IPv6 forwarding, which a gateway turns on and leaves on, makes the
	// kernel add subnet-router anycast routes: not ours to remove.
	if after, _ := ref.GW.RoutingState(ctxT(t, 5*time.Second)); dropAnycast(after) != before {
		t.Errorf("a stopped gateway left routes or rules behind:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func dropAnycast(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "anycast ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
