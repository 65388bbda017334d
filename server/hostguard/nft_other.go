//go:build !linux

package hostguard

import (
	"fmt"
	"runtime"
)

// Option changes where Apply and Remove act (Linux only).
type Option func()

var errNotLinux = fmt.Errorf("closing the gateway host to its tunnels needs Linux nftables; not available on %s", runtime.GOOS)

// Apply needs Linux.
func Apply(Spec, ...Option) error { return errNotLinux }

// Remove needs Linux.
func Remove(...Option) error { return errNotLinux }

// Exists needs Linux.
func Exists(...Option) (bool, error) { return false, errNotLinux }

// Live needs Linux.
func Live(...Option) (bool, []LiveRule, error) { return false, nil, errNotLinux }
