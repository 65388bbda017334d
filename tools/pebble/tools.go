//go:build tools

// Package tools pins Pebble, Let's Encrypt's ACME test server, apart from
// the product's module: server/certs builds it to test the gateway's ACME
// path against a real ACME server on loopback, and its dependencies never
// reach the product's go.mod.
package tools

import (
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble"
)
