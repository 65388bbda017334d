package packaging

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// DebRootCache is where the clean Debian root made by debootstrap is kept
// between runs (outside the repository); each test works on a copy.
const DebRootCache = "/var/cache/clearpath-test/bookworm-minbase"

// PackageTestEnv gates the package test: cold it runs debootstrap (about
// 3-4 minutes) and make dist for linux/amd64, too slow for every go test.
// `make package-test` sets it.
const PackageTestEnv = "CLEARPATH_PACKAGE_TEST"

func run(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debRoot returns a fresh copy of the cached minbase bookworm root, making
// the cache first when missing.
func debRoot(t *testing.T, ctx context.Context) string {
	if _, err := os.Stat(filepath.Join(DebRootCache, "usr/bin/dpkg")); err != nil {
		if _, err := exec.LookPath("debootstrap"); err != nil {
			t.Skip("debootstrap missing (apt-get install -y debootstrap): no clean Debian root to install into")
		}
		mirror := os.Getenv("CLEARPATH_DEBIAN_MIRROR")
		if mirror == "" {
			mirror = "http://deb.debian.org/debian" // the mirror apt uses here (/etc/apt/sources.list.d/debian.sources)
		}
		tmp := DebRootCache + ".tmp"
		os.RemoveAll(tmp)
		start := time.Now()
		run(t, ctx, "debootstrap", "--variant=minbase", "bookworm", tmp, mirror)
		if err := os.Rename(tmp, DebRootCache); err != nil {
			t.Fatal(err)
		}
		t.Logf("debootstrap --variant=minbase bookworm: %s (cached in %s)", time.Since(start).Round(time.Second), DebRootCache)
	}
	root := filepath.Join(t.TempDir(), "root")
	start := time.Now()
	run(t, ctx, "cp", "-a", DebRootCache, root)
	t.Logf("fresh copy of the cached root: %s", time.Since(start).Round(100*time.Millisecond))
	return root
}

// manifest lists the root's paths, leaving out what installing and removing
// any package changes by design (dpkg's database and logs, caches) and the
// group file, where the package's system group stays on purpose.
func manifest(t *testing.T, root string) []string {
	var paths []string
	skip := []string{"/var/lib/dpkg", "/var/log", "/var/cache", "/tmp", "/etc/group", "/etc/gshadow", "/etc/group-", "/etc/gshadow-", "/etc/ld.so.cache"}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths) // WalkDir's order is per directory, not of whole paths
	return paths
}

func diff(a, b []string) (added, removed []string) {
	for _, p := range b {
		if _, ok := slices.BinarySearch(a, p); !ok {
			added = append(added, p)
		}
	}
	for _, p := range a {
		if _, ok := slices.BinarySearch(b, p); !ok {
			removed = append(removed, p)
		}
	}
	return added, removed
}

// The .deb on a clean Debian 12 root (debootstrap minbase, in a chroot):
// it installs, the binaries run and name their version, the packaged
// example passes `vpn-gateway check`, the clearpath group exists, units,
// completions and man pages are in place, an edited conffile survives
// removal, and purge leaves the root as it was (but the group).
func TestDebInstallsOnCleanDebian(t *testing.T) {
	if os.Getenv(PackageTestEnv) == "" {
		t.Skip(PackageTestEnv + " not set: the package test runs debootstrap and make dist (minutes cold); `make package-test` runs it")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (debootstrap, chroot, dpkg in the chroot)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	begin := time.Now()

	deb := os.Getenv("CLEARPATH_DEB")
	const version = "v0.0.0-pkgtest"
	if deb == "" {
		out := t.TempDir()
		start := time.Now()
		cmd := exec.CommandContext(ctx, "../scripts/dist.sh")
		cmd.Env = append(os.Environ(), "VERSION="+version, "DIST_TARGETS=linux/"+goarch(t), "DIST_FORMATS=deb", "DIST_DIR="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/dist.sh: %v\n%s", err, b)
		}
		debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
		if len(debs) != 1 {
			t.Fatalf("dist made %v, want one .deb", debs)
		}
		deb = debs[0]
		t.Logf("make dist (linux/%s, deb): %s", goarch(t), time.Since(start).Round(time.Second))
	}
	t.Logf("package: %s\n%s", deb, run(t, ctx, "dpkg-deb", "-I", deb))

	root := debRoot(t, ctx)
	before := manifest(t, root)
	if err := exec.Command("cp", deb, filepath.Join(root, "tmp", "clearpath.deb")).Run(); err != nil {
		t.Fatal(err)
	}
	in := func(args ...string) string { return run(t, ctx, "chroot", append([]string{root}, args...)...) }
	mustFail := func(args ...string) {
		if out, err := exec.CommandContext(ctx, "chroot", append([]string{root}, args...)...).CombinedOutput(); err == nil {
			t.Errorf("%v succeeded in the chroot:\n%s", args, out)
		}
	}

	if out, err := exec.CommandContext(ctx, "chroot", root, "getent", "group", "clearpath").CombinedOutput(); err == nil {
		t.Fatalf("the clean root already has a clearpath group: %s", out)
	}
	start := time.Now()
	t.Logf("dpkg -i:\n%s", in("dpkg", "-i", "/tmp/clearpath.deb"))
	t.Logf("dpkg -i took %s", time.Since(start).Round(100*time.Millisecond))

	out := in("vpn", "--version")
	t.Logf("vpn --version: %s", strings.TrimSpace(out))
	if !strings.HasPrefix(out, "vpn ") || os.Getenv("CLEARPATH_DEB") == "" && !strings.HasPrefix(out, "vpn "+version+" ") {
		t.Errorf("vpn --version = %q, want the version dist linked in (%s)", out, version)
	}
	if out := in("vpn-gateway", "version"); !strings.HasPrefix(out, "vpn-gateway ") {
		t.Errorf("vpn-gateway version = %q", out)
	}
	if out := in("vpn-gateway", "check", "--offline", "--config", "/etc/clearpath/gateway.yaml.example"); !strings.Contains(out, "ok") {
		t.Errorf("vpn-gateway check on the packaged example: %q", out)
	}
	if out := in("getent", "group", "clearpath"); !strings.HasPrefix(out, "clearpath:x:") {
		t.Errorf("getent group clearpath = %q after install", out)
	} else {
		var gid int
		fmt.Sscanf(strings.Split(out, ":")[2], "%d", &gid)
		if gid >= 1000 {
			t.Errorf("clearpath group has gid %d: want a system group (< 1000)", gid)
		}
	}
	for _, p := range []string{
		"/usr/bin/vpn", "/usr/bin/vpn-gateway",
		"/usr/lib/systemd/system/clearpath-agent.service", "/usr/lib/systemd/system/clearpath-gateway.service",
		"/usr/share/bash-completion/completions/vpn", "/usr/share/zsh/vendor-completions/_vpn-gateway",
		"/usr/share/fish/vendor_completions.d/vpn.fish",
		"/usr/share/man/man1/vpn.1.gz", "/usr/share/man/man1/vpn-up.1.gz", "/usr/share/man/man1/vpn-gateway-serve.1.gz",
		"/usr/share/doc/clearpath/copyright", "/etc/logrotate.d/clearpath",
	} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("installed package lacks %s", p)
		}
	}
	if out := in("dpkg-query", "-W", "-f=${Conffiles}", "clearpath"); !strings.Contains(out, "/etc/clearpath/gateway.yaml.example") || !strings.Contains(out, "/etc/logrotate.d/clearpath") {
		t.Errorf("conffiles: %q, want /etc/clearpath/gateway.yaml.example", out)
	}
	// A bad edit is caught by check, so the example is really checked.
	example := filepath.Join(root, "etc/clearpath/gateway.yaml.example")
	orig, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), "listen_port: 51820", "listen_port: 99999", 1)
	if edited == string(orig) {
		t.Fatal("example has no listen_port: 51820 to edit")
	}
	if err := os.WriteFile(example, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail("vpn-gateway", "check", "--offline", "--config", "/etc/clearpath/gateway.yaml.example")

	// Remove: programs, units, docs gone; the edited conffile stays.
	start = time.Now()
	in("dpkg", "-r", "clearpath")
	t.Logf("dpkg -r took %s", time.Since(start).Round(100*time.Millisecond))
	mustFail("sh", "-c", "command -v vpn")
	if got, err := os.ReadFile(example); err != nil || string(got) != edited {
		t.Errorf("the edited conffile did not survive dpkg -r (%v)", err)
	}
	after := manifest(t, root)
	added, removed := diff(before, after)
	if !slices.Equal(added, []string{"/etc/clearpath", "/etc/clearpath/gateway.yaml.example", "/etc/logrotate.d/clearpath"}) || len(removed) > 0 {
		t.Errorf("after dpkg -r: added %v, removed %v; want only the conffiles and their dir", added, removed)
	}
	// Purge: nothing of ours but the group (kept: files may still carry its gid).
	in("dpkg", "--purge", "clearpath")
	added, removed = diff(before, manifest(t, root))
	if len(added)+len(removed) > 0 {
		t.Errorf("after dpkg --purge: added %v, removed %v; want the root as before", added, removed)
	}
	if out, _ := exec.CommandContext(ctx, "chroot", root, "dpkg-query", "-W", "-f=${db:Status-Status}", "clearpath").CombinedOutput(); !strings.Contains(string(out), "no packages found") && strings.TrimSpace(string(out)) != "not-installed" {
		t.Errorf("dpkg still knows clearpath after purge: %q", out)
	}
	t.Logf("package test: %s in all", time.Since(begin).Round(time.Second))
}

func goarch(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
