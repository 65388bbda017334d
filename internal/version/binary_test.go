package version_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// The real binaries, linked the way `make build` links them, answer
// --version and version with the -X version (`vpn --version` used to be an
// unknown flag: the Makefile set main.version, which vpn did not have).
func TestBinariesPrintTheLinkedVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vpn and vpn-gateway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const v = "v9.8.7-test"
	build := exec.CommandContext(ctx, "go", "build",
		"-ldflags", "-X github.com/clearpath-vpn/clearpath/internal/version.Version="+v,
		"-o", dir+string(os.PathSeparator), "./cmd/vpn", "./cmd/vpn-gateway")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, bin := range []string{"vpn", "vpn-gateway"} {
		want := regexp.MustCompile(`^` + bin + ` ` + regexp.QuoteMeta(v) + ` \(go[0-9.]+[^,]*, [a-z0-9]+/[a-z0-9]+\)\n$`)
		for _, arg := range []string{"--version", "version"} {
			out, err := exec.CommandContext(ctx, filepath.Join(dir, bin), arg).CombinedOutput()
			if err != nil || !want.Match(out) {
				t.Errorf("%s %s: %v, printed %q; want %s", bin, arg, err, out, want)
			}
		}
	}
}
