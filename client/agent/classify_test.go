package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/gwapi"
)

// Only an API that could not be reached is called unreachable: an answer
// that refuses us (401, 403, a bad config) keeps its own message.
func TestRegisterErrorNamesUnreachableAPI(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, err := range []error{
		fmt.Errorf("GET /api/v1/networks: %w", dial),
		fmt.Errorf("x: %w", context.DeadlineExceeded),
		&net.DNSError{Err: "no such host", Name: "vpn.example.com", IsNotFound: true},
		fmt.Errorf("x: %w", syscall.ENETUNREACH),
	} {
		if got := registerError("https://gw", err).Error(); !strings.HasPrefix(got, CauseAPIUnreachable+":") {
			t.Errorf("%v: want %q first, got %q", err, CauseAPIUnreachable, got)
		}
	}
	for _, err := range []error{
		&gwapi.APIError{Status: 403},
		errors.New("gateway sent a bad peer config: no addresses"),
	} {
		if got := registerError("https://gw", err).Error(); strings.Contains(got, CauseAPIUnreachable) {
			t.Errorf("%v: an answer is not unreachable: %q", err, got)
		}
	}
}
