package splitdns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Pending reads both journals with one reader: none, both, and a torn one
// named in the error while the other still comes back.
func TestPendingReadsBothJournals(t *testing.T) {
	state := t.TempDir()
	if p, err := Pending(state); err != nil || p.DNS != nil || p.Resolver != nil {
		t.Fatalf("no journals: %+v %v", p, err)
	}
	if err := writeJournal(state, Journal{Path: "/etc/resolv.conf", Before: []byte("nameserver 192.0.2.1\n")}); err != nil {
		t.Fatal(err)
	}
	if err := writeJSONJournal(state, ResolverJournalFile, ResolverJournal{Dir: "/etc/resolver"}); err != nil {
		t.Fatal(err)
	}
	p, err := Pending(state)
	if err != nil || p.DNS == nil || p.DNS.Path != "/etc/resolv.conf" || p.Resolver == nil || p.Resolver.Dir != "/etc/resolver" {
		t.Fatalf("both journals: %+v %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(state, ResolverJournalFile), []byte(`{"dir":`), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = Pending(state)
	if err == nil || !strings.Contains(err.Error(), "resolver journal: torn") || strings.Contains(err.Error(), "DNS journal") {
		t.Errorf("a torn resolver journal: %v, want an error naming it alone", err)
	}
	if p.DNS == nil || p.Resolver != nil {
		t.Errorf("with the resolver journal torn: %+v, want the DNS journal alone", p)
	}
}
