package splitdns

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The macOS /etc/resolver files, against a temp directory: one file per
// routing domain naming the tunnel's servers, journaled first; a file
// that exists (another VPN's, or a symlink planted in its place) is never
// overwritten; restore removes only files still exactly ours and the
// directory it created; a file changed since is kept.
func TestResolverDir(t *testing.T) {
	state, etc := t.TempDir(), t.TempDir()
	dir := filepath.Join(etc, "resolver") // absent: created, then removed
	servers := []netip.Addr{netip.MustParseAddr("10.10.0.10"), netip.MustParseAddr("fd10::53")}
	skipped, err := PointResolverDir(state, dir, servers, []string{"corp.internal", "Lab.Corp."})
	if err != nil || len(skipped) != 0 {
		t.Fatalf("skipped %v, %v", skipped, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "lab.corp"))
	if err != nil || string(b) != "# Written by ClearPath (vpn up): split DNS for lab.corp; `vpn down` removes it.\nnameserver 10.10.0.10\nnameserver fd10::53\n" {
		t.Fatalf("lab.corp: %q, %v", b, err)
	}
	if got := OurResolverFiles(dir); len(got) != 2 {
		t.Errorf("ours: %v", got)
	}
	if _, err := PointResolverDir(state, dir, servers, []string{"x"}); err == nil {
		t.Error("a second session over an unrestored journal was allowed")
	}
	// The agent dies here (kill -9): the next start or `vpn routes
	// restore` replays the journal.
	res, err := RestoreResolverDir(state)
	if err != nil || len(res.Removed) != 2 || len(res.Kept) != 0 {
		t.Fatalf("restore %+v, %v", res, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("created dir left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, ResolverJournalFile)); !os.IsNotExist(err) {
		t.Error("journal left after restore")
	}

	// Attack: another VPN's file for the same domain, and a symlink to a
	// file we must not write through.
	os.Mkdir(dir, 0o755)
	other := []byte("nameserver 172.16.0.53\n")
	os.WriteFile(filepath.Join(dir, "corp.internal"), other, 0o644)
	victim := filepath.Join(etc, "victim")
	os.WriteFile(victim, []byte("keep\n"), 0o600)
	os.Symlink(victim, filepath.Join(dir, "lab.corp"))
	skipped, err = PointResolverDir(state, dir, servers, []string{"corp.internal", "lab.corp", "eng.corp"})
	if err != nil || !slices.Equal(skipped, []string{"corp.internal", "lab.corp"}) {
		t.Fatalf("skipped %v, %v", skipped, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "corp.internal")); string(b) != string(other) {
		t.Errorf("another VPN's file overwritten: %q", b)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Errorf("wrote through a symlink: %q", b)
	}
	// Someone edits our file while the tunnel is up: restore keeps it.
	os.WriteFile(filepath.Join(dir, "eng.corp"), []byte("nameserver 1.1.1.1\n"), 0o644)
	res, err = RestoreResolverDir(state)
	if err != nil || len(res.Removed) != 0 || len(res.Kept) != 1 {
		t.Fatalf("restore %+v, %v", res, err)
	}
	for _, n := range []string{"corp.internal", "lab.corp", "eng.corp"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
	if _, err := PointResolverDir(state, dir, servers, []string{"../etc/passwd"}); err == nil {
		t.Error("a domain with a slash named a file outside the directory")
	}
}
