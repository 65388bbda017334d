//go:build !gendocs

package main

import "github.com/spf13/cobra"

// addGenMan does nothing in the vpn users run: the man page generator
// (cobra/doc, go-md2man, blackfriday) compiles dozens of regular
// expressions at package init, some 1-4 ms of every vpn start, paid twice
// by a `vpn up` that starts the agent. make dist builds its host vpn with
// -tags gendocs (genman.go).
func addGenMan(*cobra.Command) {}
