package adminops

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// This file holds the administrators' operations made from a shell on the
// gateway host (the vpn-gateway commands): who is acting, the store the
// configuration names, which peers or device a name means, and telling the
// gateway running on this host to act at once.

// Open loads the configuration at path and opens the store it names (with
// the configuration's allocation grace).
func Open(ctx context.Context, path string) (*config.Config, *store.Store, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("store %s: %w", config.RedactDSN(cfg.Store), err)
	}
	st.SetAllocationGrace(cfg.AllocationGrace)
	return cfg, st, nil
}

// LocalActor names the person running a command on this host, for the
// audit log: the sudo caller if any, and "cli@HOST".
func LocalActor() Actor {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		} else {
			name = fmt.Sprintf("uid %d", os.Getuid())
		}
	}
	h, _ := os.Hostname()
	return Actor{Name: name, Remote: "cli@" + h}
}

// Targets finds the peers an administrator named: by peer id, and every
// key of a user (in one network when network is set).
func Targets(ctx context.Context, st *store.Store, user string, ids []string, network string) ([]store.Peer, error) {
	var out []store.Peer
	for _, id := range ids {
		p, err := st.PeerByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("--peer %s: no such peer", id)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	if user != "" {
		subject, _, err := ResolveUser(ctx, st, user)
		if err != nil {
			return nil, err
		}
		peers, err := st.Peers(ctx, network)
		if err != nil {
			return nil, err
		}
		for _, p := range peers {
			if p.Subject == subject && !slices.ContainsFunc(out, func(q store.Peer) bool { return q.ID == p.ID }) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// ResolveDeviceUser is ResolveUser that also finds users whose only trace
// is an address allocation (their peers gone), by subject or e-mail.
func ResolveDeviceUser(ctx context.Context, st *store.Store, name string) (string, error) {
	subject, _, err := ResolveUser(ctx, st, name)
	if err == nil {
		return subject, nil
	}
	devs, derr := st.Devices(ctx, "")
	if derr != nil {
		return "", derr
	}
	found := map[string]bool{}
	for _, d := range devs {
		if d.Subject == name || (d.Email != "" && strings.EqualFold(d.Email, name)) {
			found[d.Subject] = true
		}
	}
	if len(found) == 1 {
		for s := range found {
			return s, nil
		}
	}
	return "", err
}

// AuditFor reads the audit log q selects, about or by user: every name
// the user goes by (subject and e-mail), oldest first; q.Limit keeps the
// newest entries.
func AuditFor(ctx context.Context, st *store.Store, q store.AuditQuery, user string) ([]store.AuditRecord, error) {
	if user == "" {
		return st.QueryAudit(ctx, q)
	}
	names := []string{user}
	if sub, email, err := ResolveUser(ctx, st, user); err == nil {
		names = []string{sub}
		if email != "" {
			names = append(names, email)
		}
	}
	seen := map[int64]bool{}
	var out []store.AuditRecord
	for _, n := range names {
		q.User = n
		recs, err := st.QueryAudit(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b store.AuditRecord) int { return int(a.ID - b.ID) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// Freed is what FreeDevice did.
type Freed struct {
	Device store.DeviceInfo
	// Revoked: the device's key was valid and is revoked with it.
	Revoked bool
}

// FreeDevice frees the addresses of a user's device now, before its grace
// period ends, revoking its key when revoke is set and the key is still
// valid, and audits both. network "" means the one network the device is
// in. user is the name the administrator gave (for the messages).
func FreeDevice(ctx context.Context, st *store.Store, who Actor, user, network, device string, revoke bool) (*Freed, error) {
	subject, err := ResolveDeviceUser(ctx, st, user)
	if err != nil {
		return nil, err
	}
	if network == "" {
		all, err := st.Devices(ctx, "")
		if err != nil {
			return nil, err
		}
		var nets []string
		for _, d := range all {
			if d.Subject == subject && d.Device == device {
				nets = append(nets, d.Network)
			}
		}
		switch len(nets) {
		case 0:
			return nil, fmt.Errorf("user %s has no device %s: see `vpn-gateway devices list --user %s`", user, device, user)
		case 1:
			network = nets[0]
		default:
			return nil, fmt.Errorf("device %s of %s is in several networks (%s): name one with --network", device, user, strings.Join(nets, ", "))
		}
	}
	d, err := st.FreeDevice(ctx, subject, network, device, revoke)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("user %s has no device %s in network %s: see `vpn-gateway devices list --user %s`", user, device, network, user)
	case errors.Is(err, store.ErrDeviceLive):
		return nil, fmt.Errorf("%v; add --revoke to revoke its key and free its addresses", err)
	case err != nil:
		return nil, err
	}
	addrs := Addresses(d.Addr)
	host := dash(api.Printable(d.Hostname))
	res := &Freed{Device: *d, Revoked: d.State == store.StateLive && d.PeerID != ""}
	if res.Revoked {
		if err := st.Record(ctx, store.AuditRecord{Actor: who.Name, Action: audit.Revoke, Subject: d.Subject, Email: d.Email, Network: network, PeerID: d.PeerID,
			Remote: who.Remote, Detail: fmt.Sprintf("key of %s revoked to free its addresses", host)}); err != nil {
			return nil, err
		}
	}
	if err := st.Record(ctx, store.AuditRecord{Actor: who.Name, Action: audit.Free, Subject: d.Subject, Email: d.Email, Network: network, PeerID: d.PeerID,
		Remote: who.Remote, Detail: fmt.Sprintf("addresses %s of device %s (%s, %s) freed by an administrator", strings.Join(addrs, " "), d.Device, host, d.State)}); err != nil {
		return nil, err
	}
	return res, nil
}

// Applied is what the gateway on this host did with revoked keys.
type Applied struct {
	// Err is why the gateway could not be told (NoGateway: none runs
	// here); gateways sharing the store still act within store_poll.
	Err       error
	NoGateway bool
	// Took is how long from the start of the revocation until the
	// gateway had synced.
	Took time.Duration
	// Peers are the revoked keys as this host's devices hold them now.
	Peers []PeerOnDevice
}

// PeerOnDevice says whether a revoked key is still on its network's
// WireGuard device on this host.
type PeerOnDevice struct {
	Peer      store.Peer
	Interface string
	On        bool
	// Err: the network's device is not on this host (or not configured).
	Err error
}

// NotifyGateway asks the gateway running on this host (its admin socket)
// to sync with the store at once, then checks each revoked peer is off its
// device. start is when the revocation began.
func NotifyGateway(ctx context.Context, cfg *config.Config, revoked []store.Peer, start time.Time) Applied {
	_, err := admin.Client{Path: cfg.AdminSocket}.Sync(ctx)
	if err != nil {
		return Applied{Err: err, NoGateway: errors.Is(err, admin.ErrNoGateway)}
	}
	a := Applied{Took: time.Since(start)}
	for _, p := range revoked {
		iface := ""
		for _, n := range cfg.Networks {
			if n.Name == p.Network {
				iface = n.Interface
			}
		}
		on, err := onDevice(iface, p.PublicKey)
		a.Peers = append(a.Peers, PeerOnDevice{Peer: p, Interface: iface, On: on, Err: err})
	}
	return a
}

// onDevice reports whether the WireGuard device iface on this host has key.
// With lazy peers the gateway takes a key out of its registered set before
// off the device, so a revoked key found off the device cannot come back.
func onDevice(iface, key string) (bool, error) {
	if iface == "" {
		return false, errors.New("not in the configuration")
	}
	wc, err := wgctrl.New()
	if err != nil {
		return false, err
	}
	defer wc.Close()
	d, err := wc.Device(iface)
	if err != nil {
		return false, err
	}
	for _, p := range d.Peers {
		if p.PublicKey.String() == key {
			return true, nil
		}
	}
	return false, nil
}

// Addresses lists an allocation's addresses (IPv4 first), [] for none.
func Addresses(a store.Allocation) []string {
	out := []string{}
	for _, ip := range []netip.Addr{a.V4, a.V6} {
		if ip.IsValid() {
			out = append(out, ip.String())
		}
	}
	return out
}
