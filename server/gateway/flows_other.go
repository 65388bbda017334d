//go:build !linux

package gateway

import (
	"errors"
	"log/slog"
	"net/netip"
)

// FlowFilter needs Linux eBPF (tcx); elsewhere it cannot be loaded.
type FlowFilter struct{}

// NewFlowFilter says the filter needs Linux.
func NewFlowFilter([]string, string, *slog.Logger) (*FlowFilter, error) {
	return nil, errors.New("the eBPF flow filter needs Linux >= 6.6")
}

func (*FlowFilter) AddInterface(string) error                       { return nil }
func (*FlowFilter) RemoveInterface(string) error                    { return nil }
func (*FlowFilter) OnPeer(netip.Addr, string, []netip.Prefix) error { return nil }
func (*FlowFilter) OnPeerRemoved(netip.Addr) error                  { return nil }
func (*FlowFilter) Close() error                                    { return nil }
