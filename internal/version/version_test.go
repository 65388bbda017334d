package version

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func fakeBuild(t *testing.T, x, mainVersion string, settings ...debug.BuildSetting) {
	t.Helper()
	oldX, oldRead := Version, readBuildInfo
	t.Cleanup(func() { Version, readBuildInfo = oldX, oldRead })
	Version = x
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/clearpath-vpn/clearpath", Version: mainVersion}, Settings: settings}, true
	}
}

func TestVersionSources(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "1fc8822b9bc2b9536f0b5e08783a3996862bf8c5"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	clean := debug.BuildSetting{Key: "vcs.modified", Value: "false"}
	plat := runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH
	for _, c := range []struct {
		name, x, mod string
		settings     []debug.BuildSetting
		str, long    string
	}{
		{"-X wins over the module version", "v1.2.3", "v0.0.0-20261206-1fc8822b9bc2", []debug.BuildSetting{rev, clean},
			"v1.2.3", "vpn v1.2.3 (commit 1fc8822b9bc2, " + plat + ")"},
		{"-X with blanks around it", " v1.2.3\n", "(devel)", nil, "v1.2.3", "vpn v1.2.3 (" + plat + ")"},
		{"go install of a tag", "", "v1.4.0", nil, "v1.4.0", "vpn v1.4.0 (" + plat + ")"},
		{"pseudo-version stamped from the checkout", "", "v0.0.0-20261206161000-1fc8822b9bc2+dirty", []debug.BuildSetting{rev, dirty},
			"v0.0.0-20261206161000-1fc8822b9bc2+dirty", "vpn v0.0.0-20261206161000-1fc8822b9bc2+dirty (commit 1fc8822b9bc2, modified, " + plat + ")"},
		{"checkout without a module version", "", "(devel)", []debug.BuildSetting{rev, dirty},
			"dev+1fc8822b9bc2-dirty", "vpn dev (commit 1fc8822b9bc2, modified, " + plat + ")"},
		{"nothing known", "", "(devel)", nil, "dev", "vpn dev (" + plat + ")"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeBuild(t, c.x, c.mod, c.settings...)
			if got := String(); got != c.str {
				t.Errorf("String() = %q, want %q", got, c.str)
			}
			if got := Long("vpn"); got != c.long {
				t.Errorf("Long() = %q, want %q", got, c.long)
			}
		})
	}
}

func TestNoBuildInfo(t *testing.T) {
	fakeBuild(t, "", "")
	readBuildInfo = func() (*debug.BuildInfo, bool) { return nil, false }
	if got := Get(); got.Version != "dev" || got.Revision != "" {
		t.Errorf("Get() without build info = %+v, want version dev and no revision", got)
	}
}

// The flag and the subcommand print the same line, and the subcommand
// refuses arguments rather than ignoring them.
func TestAddTo(t *testing.T) {
	fakeBuild(t, "v2.0.0", "(devel)")
	run := func(args ...string) (string, error) {
		root := &cobra.Command{Use: "vpn-gateway", SilenceUsage: true, SilenceErrors: true, RunE: func(*cobra.Command, []string) error { return nil }}
		root.AddCommand(&cobra.Command{Use: "serve", Run: func(*cobra.Command, []string) {}})
		AddTo(root)
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	want := "vpn-gateway v2.0.0 (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		got, err := run(args...)
		if err != nil || got != want {
			t.Errorf("%v: %q, %v; want %q", args, got, err, want)
		}
	}
	if _, err := run("version", "extra"); err == nil || !strings.Contains(err.Error(), "unknown command") && !strings.Contains(err.Error(), "accepts 0 arg") {
		t.Errorf("version extra: err %v, want a refusal", err)
	}
}
