package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// flows ties the eBPF filter (FlowFilter) to the gateway's peers: it
// remembers each key's tunnel addresses so a removal by key can take them
// out of the filter. A nil *flows (filter off or unsupported) does nothing.
type flows struct {
	ff    *FlowFilter
	mu    sync.Mutex
	addrs map[string][]netip.Addr // network + public key -> tunnel addresses
	owner map[netip.Addr]string   // tunnel address -> network + public key
}

// startFlows loads the filter as the config asks: "auto" warns and goes on
// without it where the kernel cannot run it, "on" refuses to start.
func (g *Gateway) startFlows(c config.Flows) (*flows, error) {
	if c.Filter == config.FlowFilterOff {
		return nil, nil
	}
	if c.Log != "" {
		if err := os.MkdirAll(filepath.Dir(c.Log), 0o700); err != nil {
			return nil, fmt.Errorf("flows.log: %w", err)
		}
	}
	ff, err := NewFlowFilter(nil, c.Log, g.log)
	if err != nil {
		if c.Filter == config.FlowFilterOn {
			return nil, fmt.Errorf("flows.filter is on: %w", err)
		}
		g.log.Warn("per-user flow filter and flow log off (flows.filter: on makes this fatal)", "err", err)
		return nil, nil
	}
	g.log.Info("per-user flow filter on", "flow_log", c.Log)
	return &flows{ff: ff, addrs: map[string][]netip.Addr{}, owner: map[netip.Addr]string{}}, nil
}

func flowUser(p store.Peer) string {
	if p.Email != "" {
		return p.Email
	}
	return p.Subject
}

// add lets p's addresses through the filter; call it before p is on the
// device, so its first packet is not dropped.
func (f *flows) add(p store.Peer) error {
	if f == nil {
		return nil
	}
	key := p.Network + "/" + p.PublicKey
	addrs := []netip.Addr{p.Addr.V4, p.Addr.V6}
	var errs []error
	for _, a := range addrs {
		if err := f.ff.OnPeer(a, flowUser(p), nil); err != nil {
			errs = append(errs, err)
		}
	}
	f.mu.Lock()
	f.addrs[key] = addrs
	for _, a := range addrs {
		if a.IsValid() {
			f.owner[a] = key
		}
	}
	f.mu.Unlock()
	return errors.Join(errs...)
}

// remove takes the addresses of publicKey out of the filter (after the key
// left the device), except those a newer key of the same device holds now
// (a key rotation adds the new key before it removes the old one).
func (f *flows) remove(network, publicKey string) error {
	if f == nil {
		return nil
	}
	key := network + "/" + publicKey
	f.mu.Lock()
	var gone []netip.Addr
	for _, a := range f.addrs[key] {
		if a.IsValid() && f.owner[a] == key {
			delete(f.owner, a)
			gone = append(gone, a)
		}
	}
	delete(f.addrs, key)
	f.mu.Unlock()
	var errs []error
	for _, a := range gone {
		if err := f.ff.OnPeerRemoved(a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (f *flows) attach(iface string) error {
	if f == nil {
		return nil
	}
	return f.ff.AddInterface(iface)
}

func (f *flows) detach(iface string) {
	if f != nil {
		f.ff.RemoveInterface(iface)
	}
}

func (f *flows) close() {
	if f != nil {
		f.ff.Close()
	}
}
