// Package version names the build of a ClearPath binary: one answer for
// `vpn`, `vpn-gateway` and `vpn-tray`, their `--version` flag and `version`
// subcommand, the gateway's discovery document and `vpn status`.
//
// Releases set Version at link time:
//
//	go build -ldflags "-X github.com/clearpath-vpn/clearpath/internal/version.Version=v1.2.3"
//
// Without it the Go build info answers: the main module's version (a tag,
// or the pseudo-version Go stamps from the checkout) and the VCS revision.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Version is set with -X at build time (make build, make dist).
var Version = ""

// Info is what is known about this build.
type Info struct {
	// Version is the release (v1.2.3), the module's pseudo-version, or
	// "dev" when neither is known.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, when Go
	// stamped it; Modified says the work tree had uncommitted changes.
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// Get returns this build's Info.
func Get() Info {
	info := Info{Version: strings.TrimSpace(Version), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := readBuildInfo()
	if ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// String is the version alone, for the discovery document and status:
// "v1.2.3", or "dev+1fc8822" (and "-dirty") when only the revision is known.
func String() string {
	i := Get()
	if i.Version != "dev" || i.Revision == "" {
		return i.Version
	}
	s := "dev+" + short(i.Revision)
	if i.Modified {
		s += "-dirty"
	}
	return s
}

// Long is the one line `--version` and `version` print:
// "vpn v1.2.3 (commit 1fc8822, go1.26.8, linux/amd64)".
func Long(program string) string {
	i := Get()
	var parts []string
	if i.Revision != "" {
		c := "commit " + short(i.Revision)
		if i.Modified {
			c += ", modified"
		}
		parts = append(parts, c)
	}
	parts = append(parts, i.GoVersion, i.Platform)
	return fmt.Sprintf("%s %s (%s)", program, i.Version, strings.Join(parts, ", "))
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// AddTo gives root a --version flag and a `version` subcommand that both
// print Long(root.Name()).
func AddTo(root *cobra.Command) {
	root.Version = String()
	root.SetVersionTemplate(Long(root.Name()) + "\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), Long(root.Name()))
			return err
		},
	})
}
