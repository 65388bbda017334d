package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// `vpn up` with a cached token, five times: each run must bring traffic
// through, and the wall times go to the log and to artifacts/ for the
// closing note.
func TestVPNUpTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	var runs []time.Duration
	for i := range 5 {
		d := up(t, alice, tok)
		v4, _ := tunnelAddrs(t, alice)
		if got := e.reach(t, vpcA4); got != v4.String() {
			t.Fatalf("run %d: vpc-a saw %s, want %s", i+1, got, v4)
		}
		down(t, alice)
		runs = append(runs, d)
	}
	sorted := slices.Clone(runs)
	slices.Sort(sorted)
	var ms []string
	for _, d := range runs {
		ms = append(ms, fmt.Sprint(d.Milliseconds()))
	}
	line := fmt.Sprintf("vpn-up-ms median=%d runs=%s", sorted[len(sorted)/2].Milliseconds(), strings.Join(ms, ","))
	t.Log(line)
	fmt.Println(line)
	if root, err := lab.RepoRoot(); err == nil {
		dir := filepath.Join(root, "artifacts")
		if os.MkdirAll(dir, 0o755) == nil {
			os.WriteFile(filepath.Join(dir, "vpn-up.txt"), []byte(line+"\n"), 0o644)
		}
	}
}
