//go:build tools

// Package tools pins test-only programs (the Dex identity provider) apart from
// the product's own module, so their dependencies never leak into it.
package tools

import (
	_ "github.com/dexidp/dex/cmd/dex"
)
