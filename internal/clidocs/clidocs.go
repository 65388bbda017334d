// Package clidocs lets a binary write its own man pages: `make dist` runs
// the hidden `gen-man DIR` subcommand of vpn and vpn-gateway and ships the
// pages in the packages (shell completions come from cobra's `completion`).
package clidocs

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/clearpath-vpn/clearpath/internal/version"
)

// AddTo gives root the hidden `gen-man DIR` subcommand.
func AddTo(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write man pages for every command into DIR (used by make dist)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return Man(root, args[0])
		},
	})
}

// Man writes section-1 man pages of root and every visible subcommand into
// dir (created if missing). The date is SOURCE_DATE_EPOCH when set, so a
// release build gives the same bytes twice.
func Man(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	date := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
		}
		date = time.Unix(sec, 0).UTC()
	}
	root.DisableAutoGenTag = true
	h := &doc.GenManHeader{Section: "1", Date: &date, Source: "ClearPath " + version.String(), Manual: "ClearPath Manual"}
	if err := doc.GenManTree(root, h, dir); err != nil {
		return fmt.Errorf("man pages into %s: %w", dir, err)
	}
	return nil
}
