//go:build !linux

package explain

import (
	"context"
	"errors"
)

// Explain reads the kernel's policy routing, which only the Linux gateway has.
func Explain(context.Context, Request) (*Answer, error) {
	return nil, errors.New("vpn-gateway explain reads Linux policy routing: run it on the gateway")
}
