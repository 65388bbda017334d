//go:build !linux

package bpf

import (
	"iter"
	"net/netip"
	"time"
)

// Filter is only implemented on Linux; elsewhere every method returns
// ErrNotSupported so that callers build on every platform.
type Filter struct{}

// Load returns ErrNotSupported.
func Load(Options) (*Filter, error) { return nil, ErrNotSupported }

// Attach returns ErrNotSupported.
func (*Filter) Attach(string) error { return ErrNotSupported }

// Detach returns ErrNotSupported.
func (*Filter) Detach(string) error { return ErrNotSupported }

// Attached returns nothing.
func (*Filter) Attached() []string { return nil }

// SetPeer returns ErrNotSupported.
func (*Filter) SetPeer(netip.Addr, uint32, uint32) error { return ErrNotSupported }

// DeletePeer returns ErrNotSupported.
func (*Filter) DeletePeer(netip.Addr) error { return ErrNotSupported }

// SetPolicy returns ErrNotSupported.
func (*Filter) SetPolicy(uint32, []netip.Prefix) error { return ErrNotSupported }

// Policy returns nothing.
func (*Filter) Policy(uint32) ([]netip.Prefix, bool) { return nil, false }

// DeletePolicy returns ErrNotSupported.
func (*Filter) DeletePolicy(uint32) error { return ErrNotSupported }

// Flows yields ErrNotSupported.
func (*Filter) Flows() iter.Seq2[Flow, error] {
	return func(yield func(Flow, error) bool) { yield(Flow{}, ErrNotSupported) }
}

// TakeFlow returns ErrNotSupported.
func (*Filter) TakeFlow(FlowKey) (Flow, bool, error) { return Flow{}, false, ErrNotSupported }

// Counters returns ErrNotSupported.
func (*Filter) Counters() (Counters, error) { return Counters{}, ErrNotSupported }

// Close does nothing.
func (*Filter) Close() error { return nil }

// EventReader is only implemented on Linux.
type EventReader struct{}

// Events returns ErrNotSupported.
func (*Filter) Events() (*EventReader, error) { return nil, ErrNotSupported }

// SetDeadline does nothing.
func (*EventReader) SetDeadline(time.Time) {}

// Read returns ErrNotSupported.
func (*EventReader) Read() (Event, error) { return Event{}, ErrNotSupported }

// Close does nothing.
func (*EventReader) Close() error { return nil }

// UserFlows returns ErrNotSupported.
func (*Filter) UserFlows(uint32) (UserFlows, error) { return UserFlows{}, ErrNotSupported }

// Quota returns 0.
func (*Filter) Quota() uint32 { return 0 }

// SetPolicyRules returns ErrNotSupported.
func (*Filter) SetPolicyRules(uint32, []Allow) error { return ErrNotSupported }

// PolicyRules returns nothing.
func (*Filter) PolicyRules(uint32) ([]Allow, bool) { return nil, false }
