package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clearpath-vpn/clearpath/bpf"
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
	// nets are the running networks, for their access rules.
	nets map[string]config.Network
}

// setNetworks gives the filter the networks' access rules (at start and
// on reload); reapply then puts them on live peers.
func (f *flows) setNetworks(ns []config.Network) {
	if f == nil {
		return
	}
	m := make(map[string]config.Network, len(ns))
	for _, n := range ns {
		m[n.Name] = n
	}
	f.mu.Lock()
	f.nets = m
	f.mu.Unlock()
}

// reapply sets every live peer's policy again from the access rules (and
// the groups stored with the peer). Peers of a network the rules do not
// know (being removed by a reload) keep what they have.
func (f *flows) reapply(peers []store.Peer) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	nets := f.nets
	f.mu.Unlock()
	var errs []error
	for _, p := range peers {
		if _, ok := nets[p.Network]; !ok {
			continue
		}
		errs = append(errs, f.add(p))
	}
	return errors.Join(errs...)
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
	peers := poolCapacity(g.cfg.Networks)
	size, capped := bpf.TableSizeFor(peers, uint64(c.UserFlows), uint64(c.TableMax))
	if capped {
		g.log.Warn("flows.table_max caps the flow table below every pool address's quota: if more users than fit hold their quota at once, new flows are dropped for everyone",
			"table_size", size, "pool_addresses", peers, "user_flows", c.UserFlows, "users_at_quota_that_fit", uint64(size)/uint64(c.UserFlows))
	}
	ff, err := NewFlowFilterWith(FlowFilterOptions{LogPath: c.Log, Log: g.log, Table: bpf.Options{
		FlowTableSize: size, UserQuota: uint32(c.UserFlows), AllowUnparsed: c.Unparsed == config.FlowUnparsedAllow,
	}})
	if err != nil {
		if c.Filter == config.FlowFilterOn {
			return nil, fmt.Errorf("flows.filter is on: %w", err)
		}
		if g.cfg.HasAccessRules() {
			return nil, fmt.Errorf("networks[].access needs the eBPF flow filter, which cannot run here: %w", err)
		}
		g.log.Warn("per-user flow filter and flow log off (flows.filter: on makes this fatal)", "err", err)
		return nil, nil
	}
	g.log.Info("per-user flow filter on", "flow_log", c.Log, "table_size", size, "user_flows", c.UserFlows, "unparsed", c.Unparsed)
	f := &flows{ff: ff, addrs: map[string][]netip.Addr{}, owner: map[netip.Addr]string{}}
	f.setNetworks(g.cfg.Networks)
	// Serve runs once per process; a second registration keeps the first.
	if err := g.metrics.Registry.Register(flowCollector{f}); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			g.log.Warn("flow metrics not registered", "err", err)
		}
	}
	return f, nil
}

// poolCapacity is how many peers the networks' IPv4 pools can hold (each
// peer has an IPv4 address): the most users that can have flows at once.
// Networks added by a reload later do not resize the table.
func poolCapacity(nets []config.Network) uint64 {
	var n uint64
	for _, nw := range nets {
		p := nw.Pool4()
		if !p.IsValid() {
			continue
		}
		size := uint64(1) << (32 - p.Bits())
		// Network, gateway and broadcast addresses hold no peer.
		n += max(size, 4) - 3
	}
	return max(n, 1)
}

var (
	descFlowEvicted = prometheus.NewDesc("clearpath_flow_evictions_total",
		"Flows evicted from the kernel's flow table (and written to the flow log) because their user reached flows.user_flows.", []string{"user"}, nil)
	descFlowRefused = prometheus.NewDesc("clearpath_flow_refused_total",
		"Packets of new flows dropped because their user held flows.user_flows flows.", []string{"user"}, nil)
	descFlowUnparsed = prometheus.NewDesc("clearpath_flow_unparsed_packets_total",
		"IPv6 packets whose transport header the flow filter could not reach (dropped unless flows.unparsed: allow).", []string{"user"}, nil)
	descFlowLive = prometheus.NewDesc("clearpath_flows",
		"Flows the user holds in the kernel's flow table.", []string{"user"}, nil)
)

// flowCollector exports the flow filter's per-user figures at scrape time.
type flowCollector struct{ f *flows }

func (c flowCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFlowEvicted, descFlowRefused, descFlowUnparsed, descFlowLive} {
		ch <- d
	}
}

func (c flowCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.f.ff.UserStats() {
		ch <- prometheus.MustNewConstMetric(descFlowEvicted, prometheus.CounterValue, float64(u.Evicted), u.User)
		ch <- prometheus.MustNewConstMetric(descFlowRefused, prometheus.CounterValue, float64(u.Refused), u.User)
		ch <- prometheus.MustNewConstMetric(descFlowUnparsed, prometheus.CounterValue, float64(u.Unparsed), u.User)
		ch <- prometheus.MustNewConstMetric(descFlowLive, prometheus.GaugeValue, float64(u.Live), u.User)
	}
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
	f.mu.Lock()
	// nil: the network's routing decides; a list: only these (access
	// rules, config.Network.PolicyFor).
	pol := f.nets[p.Network].PolicyFor(p.Subject, p.Email, p.Groups)
	f.mu.Unlock()
	var allowed []bpf.Allow
	if pol.Filtered {
		allowed = pol.Allows()
	}
	var errs []error
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		if err := f.ff.OnPeerRules(a, flowUser(p), allowed); err != nil {
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
