//go:build !linux

package wgdev

import "log/slog"

// wireguard-go remembers reply source addresses only on Linux.
func (d *Device) watchRoutes(*slog.Logger) (func(), error) { return func() {}, nil }
