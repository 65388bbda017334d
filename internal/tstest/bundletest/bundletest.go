// Package bundletest reads the support bundles `vpn doctor --bundle`
// writes, for the doctor's own tests and the e2e tests: one reader of the
// format cmd/vpn/internal/doctor/bundle.go writes.
package bundletest

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// Dir is the directory every file of a bundle sits in.
const Dir = "clearpath-bundle/"

// Read returns the files of the bundle at path by name (without Dir). It
// fails the test if the file is not a gzipped tar or a member lies
// outside Dir.
func Read(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("bundle %s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("bundle %s: %v", path, err)
		}
		name, ok := strings.CutPrefix(h.Name, Dir)
		if !ok {
			t.Fatalf("bundle %s: member %q is outside %s", path, h.Name, Dir)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("bundle %s: %s: %v", path, h.Name, err)
		}
		out[name] = string(b)
	}
}
