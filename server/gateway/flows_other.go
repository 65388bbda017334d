//go:build !linux

package gateway

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/clearpath-vpn/clearpath/bpf"
)

// FlowFilter needs Linux eBPF (tcx); elsewhere it cannot be loaded.
type FlowFilter struct{}

// NewFlowFilter says the filter needs Linux.
func NewFlowFilter([]string, string, *slog.Logger) (*FlowFilter, error) {
	return nil, errors.New("the eBPF flow filter needs Linux >= 6.6")
}

// FlowFilterOptions configure NewFlowFilterWith.
type FlowFilterOptions struct {
	Interfaces []string
	LogPath    string
	Log        *slog.Logger
	Table      bpf.Options
}

// NewFlowFilterWith says the filter needs Linux.
func NewFlowFilterWith(FlowFilterOptions) (*FlowFilter, error) {
	return nil, errors.New("the eBPF flow filter needs Linux >= 6.6")
}

// UserFlowStats are one user's flow-table figures for /metrics.
type UserFlowStats struct {
	User                             string
	Evicted, Refused, Unparsed, Live uint64
}

// UserStats returns nothing.
func (*FlowFilter) UserStats() []UserFlowStats { return nil }

func (*FlowFilter) AddInterface(string) error                       { return nil }
func (*FlowFilter) RemoveInterface(string) error                    { return nil }
func (*FlowFilter) OnPeer(netip.Addr, string, []netip.Prefix) error { return nil }
func (*FlowFilter) OnPeerRemoved(netip.Addr) error                  { return nil }
func (*FlowFilter) Close() error                                    { return nil }

// OnPeerRules does nothing.
func (*FlowFilter) OnPeerRules(netip.Addr, string, []bpf.Allow) error { return nil }
