// Command dist builds ClearPath's .deb and .rpm packages with nfpm used as a
// library (github.com/goreleaser/nfpm/v2, pinned in this separate module so
// the product's go.mod stays lean). `make dist` runs it once per Linux
// architecture after staging the binaries, completions, man pages and the
// example configuration:
//
//	go run . -root ../.. -stage STAGE -arch amd64 -version v1.2.3 -out DIR
//
// It reads packaging/nfpm.yaml, expanding ${ROOT}, ${STAGE}, ${ARCH},
// ${VERSION} and ${VERSION_SCHEMA} (an unknown variable is an error), and
// prints the path of each package it wrote.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

func main() {
	root := flag.String("root", "../..", "repository root")
	config := flag.String("config", "", "nfpm configuration (default <root>/packaging/nfpm.yaml)")
	stage := flag.String("stage", "", "staging dir of one architecture (binaries, completions/, man/, gateway.yaml.example)")
	arch := flag.String("arch", "amd64", "GOARCH of the staged binaries")
	version := flag.String("version", "", "version (git describe output or v1.2.3)")
	out := flag.String("out", "dist", "directory the packages are written to")
	formats := flag.String("formats", "deb,rpm", "package formats")
	flag.Parse()
	if err := run(*root, *config, *stage, *arch, *version, *out, strings.Split(*formats, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

var release = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$`)

// PackageVersion turns a git describe output into a version deb and rpm
// both order sensibly: "v1.2.3" -> "1.2.3"; an untagged "1fc8822-dirty"
// -> "0.0.0+git.1fc8822.dirty" (after any release, before 0.0.1).
func PackageVersion(v string) (string, error) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if v == "" {
		return "", fmt.Errorf("-version is required (make dist passes git describe)")
	}
	if release.MatchString(v) {
		return v, nil
	}
	if !regexp.MustCompile(`^[0-9A-Za-z.-]+$`).MatchString(v) {
		return "", fmt.Errorf("version %q: only letters, digits, dots and dashes", v)
	}
	return "0.0.0+git." + strings.ReplaceAll(v, "-", "."), nil
}

func run(root, config, stage, arch, version, out string, formats []string) error {
	if stage == "" {
		return fmt.Errorf("-stage is required")
	}
	pv, err := PackageVersion(version)
	if err != nil {
		return err
	}
	if config == "" {
		config = filepath.Join(root, "packaging", "nfpm.yaml")
	}
	raw, err := os.ReadFile(config)
	if err != nil {
		return err
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	vars := map[string]string{"ROOT": abs(root), "STAGE": abs(stage), "ARCH": arch, "VERSION": pv, "VERSION_SCHEMA": "semver"}
	var unknown []string
	text := os.Expand(string(raw), func(k string) string {
		v, ok := vars[k]
		if !ok {
			unknown = append(unknown, k)
		}
		return v
	})
	if len(unknown) > 0 {
		return fmt.Errorf("%s: unknown variables %v", config, unknown)
	}
	cfg, err := nfpm.ParseWithEnvMapping(strings.NewReader(text), func(string) string { return "" })
	if err != nil {
		return fmt.Errorf("%s: %w", config, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, format := range formats {
		info, err := cfg.Get(format)
		if err != nil {
			return fmt.Errorf("%s: %w", format, err)
		}
		if err := nfpm.PrepareForPackager(info, format); err != nil {
			return fmt.Errorf("%s: %w", format, err)
		}
		pkgr, err := nfpm.Get(format)
		if err != nil {
			return err
		}
		path := filepath.Join(out, pkgr.ConventionalFileName(info))
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		err = pkgr.Package(info, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("%s package: %w", format, err)
		}
		fmt.Println(path)
	}
	return nil
}
