// Package e2e runs ClearPath end to end: the real vpn and vpn-gateway
// binaries and a real Dex, in network namespaces (internal/tstest/lab), checked the
// way a user would check them: traffic gets through or does not, addresses,
// exit codes, `wg show`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// bins is set by TestMain when running as root.
var bins stack.Binaries

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv(rogueEnv) != "" { // a helper process, see rogueTunnel
		return runRogueTunnel()
	}
	if os.Geteuid() != 0 {
		fmt.Println("e2e: not root: the end-to-end tests skip (they build network namespaces)")
		return m.Run()
	}
	root, err := lab.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "clearpath-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	bins, err = stack.Build(ctx, root, dir)
	if err != nil {
		// Dex missing is reported with the command that builds it.
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	fmt.Printf("e2e: built vpn and vpn-gateway in %v; dex is %s\n", time.Since(start).Round(time.Millisecond), bins.Dex)
	defer lab.RemoveCAFile()
	defer removeBuiltDeb()
	return m.Run()
}
