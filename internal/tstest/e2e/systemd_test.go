package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// The package tests (make package-test) set this: they build a .deb and
// a Debian root with systemd, minutes cold.
const packageTestEnv = "CLEARPATH_PACKAGE_TEST"

// Where the clean Debian roots are cached between runs (packaging's test
// makes the minbase one; this file adds systemd to a copy of it).
const (
	minbaseCache = "/var/cache/clearpath-test/bookworm-minbase"
	systemdCache = "/var/cache/clearpath-test/bookworm-systemd"
)

// sdContainer is a podman container of a Debian root with systemd as pid 1.
type sdContainer struct {
	t      *testing.T
	podman string
	name   string
	root   string
}

func sh(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// systemdRoot returns a fresh copy of a Debian 12 root with systemd, the
// .deb under test copied to /root/clearpath.deb. The cached root is made
// from the package test's minbase root (or debootstrap) with apt-get.
func systemdRoot(t *testing.T, ctx context.Context) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(systemdCache, "lib/systemd/systemd")); err != nil {
		tmp := systemdCache + ".tmp"
		os.RemoveAll(tmp)
		start := time.Now()
		const pkgs = "systemd,systemd-sysv,dbus,iproute2,nftables"
		if _, err := os.Stat(filepath.Join(minbaseCache, "usr/bin/dpkg")); err == nil {
			if out, err := sh(ctx, "cp", "-a", minbaseCache, tmp); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			if out, err := sh(ctx, "cp", "/etc/resolv.conf", filepath.Join(tmp, "etc/resolv.conf")); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			cmd := exec.CommandContext(ctx, "chroot", tmp, "sh", "-c",
				"apt-get update -q && apt-get install -y -q --no-install-recommends "+strings.ReplaceAll(pkgs, ",", " ")+" && apt-get clean")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("apt-get install systemd in the root: %v\n%s", err, out)
			}
		} else {
			if _, err := exec.LookPath("debootstrap"); err != nil {
				t.Skip("debootstrap missing (apt-get install -y debootstrap): no Debian root to run systemd in")
			}
			if out, err := sh(ctx, "debootstrap", "--variant=minbase", "--include="+pkgs, "bookworm", tmp, "http://deb.debian.org/debian"); err != nil {
				t.Fatalf("debootstrap: %v\n%s", err, out)
			}
		}
		if err := os.Rename(tmp, systemdCache); err != nil {
			t.Fatal(err)
		}
		t.Logf("Debian root with systemd: %s (cached in %s)", time.Since(start).Round(time.Second), systemdCache)
	}
	root := filepath.Join(t.TempDir(), "root")
	if out, err := sh(ctx, "cp", "-a", systemdCache, root); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if out, err := sh(ctx, "cp", packagedDeb(t, ctx), filepath.Join(root, "root", "clearpath.deb")); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return root
}

// builtDeb is the .deb scripts/dist.sh made for this test process, shared
// by the tests that install it (its directory outlives them).
var builtDeb struct {
	sync.Mutex
	path string
}

// removeBuiltDeb deletes what packagedDeb built (TestMain, at the end).
func removeBuiltDeb() {
	if builtDeb.path != "" {
		os.RemoveAll(filepath.Dir(builtDeb.path))
	}
}

// packagedDeb is $CLEARPATH_DEB or a .deb built once by scripts/dist.sh
// (linux, this machine's arch; 20 s to a minute and a half warm).
func packagedDeb(t *testing.T, ctx context.Context) string {
	t.Helper()
	if deb := os.Getenv("CLEARPATH_DEB"); deb != "" {
		return deb
	}
	builtDeb.Lock()
	defer builtDeb.Unlock()
	if builtDeb.path != "" {
		return builtDeb.path
	}
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	arch, err := sh(ctx, "go", "env", "GOARCH")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.MkdirTemp("", "clearpath-systemd-deb-")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "dist.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-systemdtest", "DIST_TARGETS=linux/"+strings.TrimSpace(arch), "DIST_FORMATS=deb", "DIST_DIR="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/dist.sh: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("dist made %v, want one .deb", debs)
	}
	t.Logf("make dist (deb): %s", time.Since(start).Round(time.Second))
	builtDeb.path = debs[0]
	return debs[0]
}

// startSystemd runs root in a podman container with systemd as pid 1 and
// waits until systemd reports the system running. Fitted to this machine
// as TestGatewayContainerServes is: runc (crun refuses the hybrid
// cgroups), cgroupfs, ulimits under the sandbox's hard limits.
func startSystemd(t *testing.T, ctx context.Context, name, root string, args ...string) *sdContainer {
	t.Helper()
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman not installed (apt-get install -y podman runc): no container to run systemd in")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed (apt-get install -y runc)")
	}
	c := &sdContainer{t: t, podman: podman, name: name, root: root}
	exec.Command(podman, "rm", "-f", name).Run()
	run := append([]string{"--runtime", "runc", "--cgroup-manager=cgroupfs", "run", "-d", "--name", name,
		"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", "--systemd=always",
		"--device", "/dev/net/tun"}, args...)
	run = append(run, "--rootfs", root, "/lib/systemd/systemd")
	if out, err := sh(ctx, podman, run...); err != nil {
		t.Fatalf("podman run (systemd as pid 1): %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(podman, "exec", name, "journalctl", "--no-pager", "-n", "80").CombinedOutput()
			t.Logf("journal of %s:\n%s", name, out)
		}
		exec.Command(podman, "rm", "-f", "-t", "5", name).Run()
	})
	start := time.Now()
	var state string
	for time.Since(start) < 60*time.Second {
		state, _ = c.exec(ctx, "systemctl", "is-system-running")
		state = strings.TrimSpace(state)
		if state == "running" || state == "degraded" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	pid1, _ := c.exec(ctx, "cat", "/proc/1/comm")
	if strings.TrimSpace(pid1) != "systemd" {
		t.Fatalf("pid 1 in the container is %q, want systemd (system state %q)", pid1, state)
	}
	if state != "running" {
		failed, _ := c.exec(ctx, "systemctl", "--failed", "--no-pager")
		t.Logf("systemd state %q after %s:\n%s", state, time.Since(start).Round(time.Millisecond), failed)
	} else {
		t.Logf("systemd running as pid 1 in %s after %s", name, time.Since(start).Round(time.Millisecond))
	}
	return c
}

func (c *sdContainer) exec(ctx context.Context, args ...string) (string, error) {
	return sh(ctx, c.podman, append([]string{"exec", c.name}, args...)...)
}

// must runs args in the container and fails the test if they fail.
func (c *sdContainer) must(ctx context.Context, args ...string) string {
	c.t.Helper()
	out, err := c.exec(ctx, args...)
	if err != nil {
		c.t.Fatalf("in %s: %s: %v\n%s", c.name, strings.Join(args, " "), err, out)
	}
	return out
}

// as runs a shell command line as user, with a login environment (HOME,
// supplementary groups from /etc/group), as a person at a terminal would.
func (c *sdContainer) as(ctx context.Context, user, cmdline string) (string, error) {
	return c.exec(ctx, "runuser", "-l", user, "-c", cmdline)
}

// active waits until unit reports want (systemctl is-active).
func (c *sdContainer) active(ctx context.Context, unit, want string) {
	c.t.Helper()
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, _ := c.exec(ctx, "systemctl", "is-active", unit)
		if got = strings.TrimSpace(out); got == want {
			return
		}
	}
	st, _ := c.exec(ctx, "systemctl", "status", "--no-pager", "-l", unit)
	c.t.Fatalf("%s is %q, want %q:\n%s", unit, got, want, st)
}

func needPackageTest(t *testing.T) {
	t.Helper()
	lab.SkipUnlessRoot(t)
	if os.Getenv(packageTestEnv) == "" {
		t.Skip(packageTestEnv + " not set: builds a .deb and a Debian root with systemd (minutes cold); `make package-test` runs it")
	}
}

// From the .deb on a clean Debian root with systemd as pid 1, in the lab's
// laptop namespace: installing starts clearpath-agent (the package's
// postinst: systemctl enable + restart), its socket is root:clearpath
// 0660; the administrator names the gateway in /etc/clearpath/agent.env;
// bob, not in the group, is refused by `vpn status` and `vpn up`
// with the message naming the group and no tunnel appears; alice, a
// member, runs `vpn up` as herself against the packaged agent and reaches
// vpc-a through the lab gateway (run from its container image, as make
// image builds it); `vpn down` and `systemctl stop` leave the
// laptop's routing as it was.
func TestPackagedAgentUnderSystemd(t *testing.T) {
	needPackageTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := systemdRoot(t, ctx)
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman not installed (apt-get install -y podman runc): no container to run systemd in")
	}
	// The lab's gateway runs from its container image (make image).
	ref := lab.ReferenceT(t, lab.Options{})
	s, _ := startContainerGateway(t, ctx, podman, ref)
	e := envOn(t, ref, s)
	aliceTok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	// What the users bring: their token (as `vpn login` would have cached
	// one) and the lab's CA, readable by them.
	os.MkdirAll(filepath.Join(root, "opt", "lab"), 0o755)
	for src, dst := range map[string]string{aliceTok: "alice.token", e.CAFile: "ca.pem"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "opt", "lab", dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before, err := e.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	c := startSystemd(t, ctx, "clearpath-sd-"+e.Prefix, root,
		"--network", "ns:/var/run/netns/"+e.Laptop.NS, "--cap-add", "NET_ADMIN,NET_RAW")
	start := time.Now()
	t.Logf("dpkg -i under systemd:\n%s", c.must(ctx, "dpkg", "-i", "/root/clearpath.deb"))
	c.active(ctx, "clearpath-agent.service", "active")
	t.Logf("installed and the agent active in %s", time.Since(start).Round(time.Millisecond))
	if out := c.must(ctx, "systemctl", "is-enabled", "clearpath-agent.service"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("clearpath-agent is %q after install, want enabled", out)
	}
	if out := c.must(ctx, "stat", "-c", "%U:%G %a", "/run/clearpath/agent.sock"); strings.TrimSpace(out) != "root:clearpath 660" {
		t.Errorf("agent socket is %q, want root:clearpath 660", strings.TrimSpace(out))
	}
	// The administrator names the gateway members may use, as the
	// README's Install section says.
	c.must(ctx, "sh", "-c", "echo CLEARPATH_SERVER="+e.URL+" > /etc/clearpath/agent.env")
	c.must(ctx, "systemctl", "restart", "clearpath-agent.service")
	c.active(ctx, "clearpath-agent.service", "active")
	c.must(ctx, "useradd", "-m", "-G", "clearpath", "alice")
	c.must(ctx, "useradd", "-m", "bob")
	up := "vpn up --server " + e.URL + " --ca-file /opt/lab/ca.pem --token-file /opt/lab/alice.token"

	// bob is not in the group: refused, told what to do, nothing changed.
	for _, cmdline := range []string{"vpn status", up} {
		out, err := c.as(ctx, "bob", cmdline)
		if err == nil || !strings.Contains(out, "clearpath group") {
			t.Errorf("bob: %s: err %v, want refused naming the clearpath group:\n%s", cmdline, err, out)
		} else {
			t.Logf("bob: %s: %s", cmdline, strings.TrimSpace(out))
		}
	}
	if now, _ := e.Laptop.RoutingState(ctxT(t, 5*time.Second)); now != before {
		t.Errorf("bob's refused vpn up changed the laptop's routing:\n%s", now)
	}

	start = time.Now()
	out, err := c.as(ctx, "alice", up)
	if err != nil {
		t.Fatalf("alice (clearpath group): %s: %v\n%s", up, err, out)
	}
	t.Logf("alice: vpn up against the packaged agent in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	if got := e.reach(t, vpcA4); !netip.MustParsePrefix(lab.EngPool4).Contains(netip.MustParseAddr(got)) {
		t.Errorf("vpc-a saw %q, want a tunnel address in %s", got, lab.EngPool4)
	}
	if out, err := c.as(ctx, "alice", "vpn status"); err != nil || !strings.Contains(out, "up") {
		t.Errorf("alice: vpn status: %v\n%s", err, out)
	}
	if out, err := c.as(ctx, "alice", "vpn down"); err != nil {
		t.Errorf("alice: vpn down: %v\n%s", err, out)
	}
	// The agent ends after `vpn down`; systemd has it back (Restart=always).
	c.active(ctx, "clearpath-agent.service", "active")
	c.must(ctx, "systemctl", "stop", "clearpath-agent.service")
	c.active(ctx, "clearpath-agent.service", "inactive")
	after, err := e.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("routing after vpn down and systemctl stop differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// gwServiceConfig is a gateway configuration for the service test: the
// API on loopback, an identity provider that is not there (the gateway
// serves and reports it unhealthy), the eng network, and ops when
// withOps (what the reload adds).
func gwServiceConfig(withOps bool) string {
	cfg := `listen: "127.0.0.1:8080"
endpoint: vpn.example.com
oidc:
  issuer: http://127.0.0.1:5556/dex
  allow_http: true
  client_id: clearpath
store: /var/lib/clearpath-gateway/gateway.db
state_dir: /var/lib/clearpath-gateway
networks:
  - name: eng
    group: engineering
    interface: wg-eng
    listen_port: 51820
    pool: [100.64.0.0/24, "fd00:64::/64"]
    allow: [10.10.0.0/16]
`
	if withOps {
		cfg += `  - name: ops
    group: ops
    interface: wg-ops
    listen_port: 51821
    pool: [100.65.0.0/24, "fd00:65::/64"]
    allow: [10.20.0.0/16]
`
	}
	return cfg
}

// The packaged clearpath-gateway unit under systemd as pid 1 (podman, the
// container's own network namespace): `systemctl enable --now` runs the
// check (ExecStartPre) and serve with the unit's sandbox; `systemctl
// reload` (SIGHUP) adds a network without a restart (same main pid); a
// broken edit reloaded is refused and the gateway keeps serving the old
// configuration; `systemctl stop` removes its interfaces, rules and
// nftables table. Forwarding is set by the container (--sysctl: its
// /proc/sys is read-only); the eBPF flow filter stays off because this
// machine's hard RLIMIT_MEMLOCK (8 MiB) cannot be lifted in a container
// (TestUnitCapabilitiesSuffice runs the filter under the unit's caps).
func TestPackagedGatewayUnderSystemd(t *testing.T) {
	needPackageTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := systemdRoot(t, ctx)
	name := "clearpath-sdgw-" + strings.TrimPrefix(filepath.Base(filepath.Dir(root)), "Test")
	if len(name) > 60 {
		name = name[:60]
	}
	c := startSystemd(t, ctx, name, root, "--network", "none",
		"--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "net.ipv6.conf.all.forwarding=1",
		"--cap-add", "NET_ADMIN,BPF,PERFMON,NET_BIND_SERVICE")
	c.must(ctx, "dpkg", "-i", "/root/clearpath.deb")
	rulesBefore := c.must(ctx, "ip", "rule")
	linksBefore := c.must(ctx, "ip", "-br", "link")
	tablesBefore := c.must(ctx, "nft", "list", "tables")
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, "etc", "clearpath", "gateway.yaml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(gwServiceConfig(false))
	start := time.Now()
	c.must(ctx, "systemctl", "enable", "--now", "clearpath-gateway.service")
	c.active(ctx, "clearpath-gateway.service", "active")
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if ok() {
				return
			}
		}
		st, _ := c.exec(ctx, "systemctl", "status", "--no-pager", "-l", "clearpath-gateway")
		t.Fatalf("%s: not within 20 s\n%s", what, st)
	}
	hasLink := func(name string) bool {
		out, _ := c.exec(ctx, "ip", "-br", "link", "show", name)
		return strings.HasPrefix(out, name)
	}
	waitFor("wg-eng up", func() bool { return hasLink("wg-eng") })
	t.Logf("systemctl enable --now clearpath-gateway: serving wg-eng in %s", time.Since(start).Round(time.Millisecond))
	if out, _ := c.exec(ctx, "vpn-gateway", "health"); !strings.Contains(out, `"network eng":"ok"`) || !strings.Contains(out, "identity_provider") {
		t.Errorf("vpn-gateway health under the service: %s", out)
	}
	pid := strings.TrimSpace(c.must(ctx, "systemctl", "show", "-p", "MainPID", "--value", "clearpath-gateway"))

	// Reload adds ops without a restart.
	write(gwServiceConfig(true))
	start = time.Now()
	c.must(ctx, "systemctl", "reload", "clearpath-gateway.service")
	waitFor("wg-ops after systemctl reload", func() bool { return hasLink("wg-ops") })
	t.Logf("systemctl reload: wg-ops up in %s", time.Since(start).Round(time.Millisecond))
	if now := strings.TrimSpace(c.must(ctx, "systemctl", "show", "-p", "MainPID", "--value", "clearpath-gateway")); now != pid {
		t.Errorf("main pid %s after reload, was %s: the gateway restarted", now, pid)
	}
	// A broken edit: the reload is refused, the old configuration serves.
	write(strings.Replace(gwServiceConfig(true), "listen_port: 51821", "listen_port: 99999", 1))
	c.must(ctx, "systemctl", "reload", "clearpath-gateway.service")
	waitFor("the refused reload logged", func() bool {
		out, _ := c.exec(ctx, "journalctl", "-u", "clearpath-gateway", "--no-pager")
		return strings.Contains(out, "99999")
	})
	c.active(ctx, "clearpath-gateway.service", "active")
	if !hasLink("wg-eng") || !hasLink("wg-ops") {
		t.Errorf("after a refused reload: links %s", c.must(ctx, "ip", "-br", "link"))
	}

	// Stop: everything the gateway made is gone.
	c.must(ctx, "systemctl", "stop", "clearpath-gateway.service")
	c.active(ctx, "clearpath-gateway.service", "inactive")
	for what, pair := range map[string][2]string{
		"ip rule":         {rulesBefore, c.must(ctx, "ip", "rule")},
		"ip -br link":     {linksBefore, c.must(ctx, "ip", "-br", "link")},
		"nft list tables": {tablesBefore, c.must(ctx, "nft", "list", "tables")},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s after systemctl stop differs:\n--- before\n%s--- after\n%s", what, pair[0], pair[1])
		}
	}
	journal, _ := c.exec(ctx, "journalctl", "-u", "clearpath-gateway", "--no-pager", "-o", "cat")
	t.Logf("gateway journal:\n%s", journal)
}
