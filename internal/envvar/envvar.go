// Package envvar reads ClearPath's environment variables: CLEARPATH_<NAME>,
// and the old VPN_<NAME> spelling with a one-line deprecation warning
// (once per name and process), so scripts written for earlier releases
// keep working while they are moved over.
package envvar

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Prefix starts every ClearPath environment variable; OldPrefix is the
// deprecated spelling still read.
const (
	Prefix    = "CLEARPATH_"
	OldPrefix = "VPN_"
)

// Warnings is where the deprecation line goes (tests swap it).
var Warnings io.Writer = os.Stderr

var (
	mu     sync.Mutex
	warned = map[string]bool{}
)

// Lookup returns CLEARPATH_<name>, else VPN_<name> (warning once that it
// is deprecated). name is given without a prefix, e.g. "STATE_DIR".
func Lookup(name string) (string, bool) {
	if v, ok := os.LookupEnv(Prefix + name); ok {
		return v, true
	}
	v, ok := os.LookupEnv(OldPrefix + name)
	if !ok {
		return "", false
	}
	mu.Lock()
	first := !warned[name]
	warned[name] = true
	mu.Unlock()
	if first {
		fmt.Fprintf(Warnings, "warning: %s%s is deprecated, set %s%s instead\n", OldPrefix, name, Prefix, name)
	}
	return v, true
}

// Get is Lookup without the flag: "" when neither is set.
func Get(name string) string {
	v, _ := Lookup(name)
	return v
}

// Var is a documented variable, for --help.
type Var struct{ Name, Help string }

// Help renders vars as the "Environment:" section of a command's help.
func Help(vars []Var) string {
	var b strings.Builder
	b.WriteString("Environment (the old VPN_ names are still read, with a warning):\n")
	for _, v := range vars {
		fmt.Fprintf(&b, "  %-26s %s\n", Prefix+v.Name, v.Help)
	}
	return b.String()
}
