package analysis

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// Every id a check can report is in IDs (or `vpn doctor --fix ID` would
// call it a typo), and IDs holds no id that nothing reports.
func TestIDsCatalogue(t *testing.T) {
	re := regexp.MustCompile(`ID: *"([a-z0-9-]+)"`)
	var files []string
	for _, glob := range []string{"*.go", "../../cmd/vpn/internal/doctor/*.go", "../../client/splitdns/*.go"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if filepath.Base(f) == "ids.go" || filepath.Ext(f) != ".go" || len(f) > 8 && f[len(f)-8:] == "_test.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			id := string(m[1])
			seen[id] = true
			if !KnownID(id) {
				t.Errorf("%s reports %q, which IDs does not list", f, id)
			}
		}
	}
	for _, id := range IDs {
		if !seen[id] {
			t.Errorf("IDs lists %q, which no check reports", id)
		}
	}
	if !slices.IsSorted(IDs) {
		t.Error("keep IDs sorted")
	}
}
