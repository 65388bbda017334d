//go:build !linux

package gwdoctor

import (
	"context"
	"errors"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// Check examines Linux forwarding and policy routing: the gateway's host.
func Check(context.Context, Options) (*analysis.Report, error) {
	return nil, errors.New("vpn-gateway doctor checks Linux forwarding and policy routing: run it on the gateway")
}
