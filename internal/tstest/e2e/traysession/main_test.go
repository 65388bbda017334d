//go:build linux

// Package traysession runs the tray app in a real desktop session against
// the real product: Xvfb, a session D-Bus, a StatusNotifier host, the
// vpn-tray binary and its agent in the lab's laptop namespace, Dex and the
// gateway in theirs. The test clicks the tray menu over dbusmenu as a tray
// host does, checks the tunnel as a user would, and saves screenshots.
package traysession

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

var (
	bins    stack.Binaries
	trayBin string
	repo    string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("traysession: not root: the tray session test skips (it builds network namespaces)")
		return m.Run()
	}
	var err error
	if repo, err = lab.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "traysession:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "clearpath-tray-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "traysession:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if bins, err = stack.Build(ctx, repo, dir); err != nil {
		fmt.Fprintln(os.Stderr, "traysession:", err)
		return 1
	}
	// The tray is the one binary built with cgo (fyne: GLFW, OpenGL, X11).
	trayBin = filepath.Join(dir, "vpn-tray")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", trayBin, "./cmd/vpn-tray")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "traysession: go build ./cmd/vpn-tray (cgo; the X11 and GL dev packages come from `make deps`): %v\n%s", err, out)
		return 1
	}
	fmt.Printf("traysession: built vpn, vpn-gateway and vpn-tray in %v\n", time.Since(start).Round(time.Millisecond))
	defer lab.RemoveCAFile()
	return m.Run()
}
