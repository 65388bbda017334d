//go:build !darwin

package agent

// resolverDir: none outside macOS (the stub or systemd-resolved split).
const resolverDir = ""
