//go:build gendocs

package main

import (
	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/internal/clidocs"
)

// addGenMan gives vpn the hidden `gen-man DIR` (make dist builds vpn with
// -tags gendocs to write the man pages).
func addGenMan(root *cobra.Command) { clidocs.AddTo(root) }
