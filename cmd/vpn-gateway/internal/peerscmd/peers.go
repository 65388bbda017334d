// Package peerscmd implements `vpn-gateway peers list` and `vpn-gateway
// peers revoke`, which work on the store named by --config and, for live
// figures and immediate effect, on the gateway running on this host.
package peerscmd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/internal/units"
	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Schema names the format of `vpn-gateway peers list --json` (docs/JSON.md).
var Schema = jsonout.Schema("peers", 1)

// NewCmd returns `vpn-gateway peers`.
func NewCmd(io cmdutil.IO) *cobra.Command {
	cmd := &cobra.Command{Use: "peers", Short: "List or revoke registered keys"}
	cmd.AddCommand(newList(io), newRevoke(io))
	return cmd
}

// Peer is one line of `peers list --json`.
type Peer struct {
	User          string     `json:"user"`
	Email         string     `json:"email,omitempty"`
	Subject       string     `json:"subject"`
	Network       string     `json:"network"`
	PeerID        string     `json:"peer_id"`
	Hostname      string     `json:"hostname,omitempty"`
	OS            string     `json:"os,omitempty"`
	Addresses     []string   `json:"addresses"`
	PublicKey     string     `json:"public_key"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	LastHandshake *time.Time `json:"last_handshake,omitempty"`
	RxBytes       int64      `json:"rx_bytes"`
	TxBytes       int64      `json:"tx_bytes"`
	Endpoint      string     `json:"endpoint,omitempty"`
	// OnDevice says whether the key is on the network's WireGuard device
	// on this host (false when the gateway is not running here).
	OnDevice bool `json:"on_device"`
}

// ListOptions are the flags of `peers list`.
type ListOptions struct {
	ConfigPath, Network, User string
	JSON                      bool
	Now                       func() time.Time
}

func newList(io cmdutil.IO) *cobra.Command {
	o := &ListOptions{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Registered keys: user, network, address, last handshake, rx/tx, expiry",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return List(cmd.Context(), io, o) },
	}
	cmdutil.ConfigFlag(cmd, &o.ConfigPath)
	cmd.Flags().StringVar(&o.Network, "network", "", "only this network")
	cmd.Flags().StringVar(&o.User, "user", "", "only this user (e-mail, subject or the part before @)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (schema "+Schema+")")
	return cmd
}

// Gather reads the peers from the store and joins the live device figures.
func Gather(ctx context.Context, cfg *config.Config, st *store.Store, network, subject string) ([]Peer, []string, error) {
	stored, err := st.Peers(ctx, network)
	if err != nil {
		return nil, nil, err
	}
	type live struct {
		hs       time.Time
		rx, tx   int64
		endpoint string
	}
	onDev := map[string]live{}
	var notes []string
	if wc, err := wgctrl.New(); err == nil {
		defer wc.Close()
		for _, n := range cfg.Networks {
			d, err := wc.Device(n.Interface)
			if err != nil {
				notes = append(notes, fmt.Sprintf("network %s: no device %s on this host (is the gateway running here?)", n.Name, n.Interface))
				continue
			}
			for _, p := range d.Peers {
				l := live{hs: p.LastHandshakeTime, rx: p.ReceiveBytes, tx: p.TransmitBytes}
				if p.Endpoint != nil {
					l.endpoint = p.Endpoint.String()
				}
				onDev[n.Name+"/"+p.PublicKey.String()] = l
			}
		}
	}
	var out []Peer
	for _, p := range stored {
		if subject != "" && p.Subject != subject {
			continue
		}
		q := Peer{User: p.Email, Email: p.Email, Subject: p.Subject, Network: p.Network, PeerID: p.ID, Hostname: p.Hostname, OS: p.OS,
			PublicKey: p.PublicKey, CreatedAt: p.CreatedAt.UTC(), ExpiresAt: p.ExpiresAt.UTC(), Addresses: []string{}}
		if q.User == "" {
			q.User = p.Subject
		}
		for _, a := range []netip.Addr{p.Addr.V4, p.Addr.V6} {
			if a.IsValid() {
				q.Addresses = append(q.Addresses, a.String())
			}
		}
		hs := p.LastHandshake
		if l, ok := onDev[p.Network+"/"+p.PublicKey]; ok {
			q.OnDevice = true
			q.RxBytes, q.TxBytes, q.Endpoint = l.rx, l.tx, l.endpoint
			if l.hs.After(hs) {
				hs = l.hs
			}
		}
		if !hs.IsZero() {
			h := hs.UTC()
			q.LastHandshake = &h
		}
		out = append(out, q)
	}
	return out, notes, nil
}

// List prints the peers.
func List(ctx context.Context, io cmdutil.IO, o *ListOptions) error {
	cfg, st, err := cmdutil.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	subject := ""
	if o.User != "" {
		if subject, _, err = cmdutil.ResolveUser(ctx, st, o.User); err != nil {
			return err
		}
	}
	peers, notes, err := Gather(ctx, cfg, st, o.Network, subject)
	if err != nil {
		return err
	}
	if o.JSON {
		return jsonout.List(io.Out, Schema, "peers", peers)
	}
	now := o.Now()
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tNETWORK\tADDRESS\tHOST\tLAST HANDSHAKE\tRX\tTX\tEXPIRES\tPEER")
	for _, p := range peers {
		hs := "never"
		if p.LastHandshake != nil {
			hs = cmdutil.Ago(*p.LastHandshake, now)
		}
		rx, tx := units.Bytes(p.RxBytes), units.Bytes(p.TxBytes)
		if !p.OnDevice {
			rx, tx = "-", "-"
		}
		// Host names and e-mails come from clients and tokens: escape
		// what could drive the terminal (stored before registrations were
		// checked, or from an IdP).
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", api.Printable(p.User), p.Network, strings.Join(p.Addresses, ","), dash(api.Printable(p.Hostname)), hs, rx, tx, cmdutil.In(p.ExpiresAt, now), p.PeerID)
	}
	tw.Flush()
	if len(peers) == 0 {
		fmt.Fprintln(io.Out, "(no registered keys)")
	}
	for _, n := range notes {
		fmt.Fprintln(io.ErrOut, "note:", n)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RevokeOptions are the flags of `peers revoke`.
type RevokeOptions struct {
	ConfigPath string
	User       string
	PeerIDs    []string
	Network    string
	Reason     string
	// NoNotify skips telling the local gateway: it (and any other gateway
	// sharing the store) notices within lifecycle.store_poll.
	NoNotify bool
}

func newRevoke(io cmdutil.IO) *cobra.Command {
	o := &RevokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke [USER]",
		Short: "Revoke a user's keys (or --peer ID): removed from the store and, within seconds, from every gateway's device",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.User = args[0]
			}
			if o.User == "" && len(o.PeerIDs) == 0 {
				return errors.New("name a USER or --peer ID")
			}
			return Revoke(cmd.Context(), io, o)
		},
	}
	cmdutil.ConfigFlag(cmd, &o.ConfigPath)
	cmd.Flags().StringSliceVar(&o.PeerIDs, "peer", nil, "peer id(s) to revoke (from `peers list`)")
	cmd.Flags().StringVar(&o.Network, "network", "", "only the user's key in this network")
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why, for the audit log and the webhook")
	cmd.Flags().BoolVar(&o.NoNotify, "no-notify", false, "do not poke the local gateway over its admin socket (it still notices within store_poll)")
	return cmd
}

// Revoke removes the matching peers from the store, audits each, and asks
// the running gateway to take them off its devices at once.
func Revoke(ctx context.Context, io cmdutil.IO, o *RevokeOptions) error {
	cfg, st, err := cmdutil.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	targets, err := Targets(ctx, st, o.User, o.PeerIDs, o.Network)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("nothing to revoke: no registered key matches")
	}
	n, err := RevokePeers(ctx, io, cfg, st, targets, o.Reason, o.NoNotify)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("nothing revoked")
	}
	return nil
}

// Targets finds the peers an administrator named.
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
		subject, _, err := cmdutil.ResolveUser(ctx, st, user)
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

// RevokePeers deletes peers from the store, audits and reports, then tells
// the local gateway. It returns how many were revoked.
func RevokePeers(ctx context.Context, io cmdutil.IO, cfg *config.Config, st *store.Store, peers []store.Peer, reason string, noNotify bool) (int, error) {
	start := time.Now()
	res, err := adminops.Revoke(ctx, st, adminops.Actor{Name: cmdutil.Actor(), Remote: cmdutil.Remote()}, peers, reason)
	n, rerr := reportRevoked(ctx, io, cfg, res, err != nil || noNotify, start)
	if err != nil {
		return n, err
	}
	return n, rerr
}

// ReportRevoked prints what adminops.Revoke or adminops.Disable did and,
// unless noNotify, asks the local gateway to take the keys off its devices
// at once. It returns how many were revoked.
func ReportRevoked(ctx context.Context, io cmdutil.IO, cfg *config.Config, res []adminops.Revoked, noNotify bool) (int, error) {
	return reportRevoked(ctx, io, cfg, res, noNotify, time.Now())
}

func reportRevoked(ctx context.Context, io cmdutil.IO, cfg *config.Config, res []adminops.Revoked, noNotify bool, start time.Time) (int, error) {
	var done []store.Peer
	for _, r := range res {
		p := r.Peer
		if r.Gone {
			fmt.Fprintf(io.ErrOut, "peer %s is already gone\n", p.ID)
			continue
		}
		who := p.Email
		if who == "" {
			who = p.Subject
		}
		fmt.Fprintf(io.Out, "Revoked peer %s of %s in network %s (host %s).\n", p.ID, api.Printable(who), p.Network, dash(api.Printable(p.Hostname)))
		done = append(done, p)
	}
	if len(done) == 0 || noNotify {
		return len(done), nil
	}
	_, err := admin.Client{Path: cfg.AdminSocket}.Sync(ctx)
	switch {
	case errors.Is(err, admin.ErrNoGateway):
		fmt.Fprintf(io.Out, "No gateway runs on this host (%v); gateways sharing the store remove the key within %s.\n", err, cfg.Lifecycle.StorePoll)
		return len(done), nil
	case err != nil:
		fmt.Fprintf(io.ErrOut, "warning: telling the running gateway failed (%v); it notices within %s anyway\n", err, cfg.Lifecycle.StorePoll)
		return len(done), nil
	}
	took := time.Since(start).Round(time.Millisecond)
	for _, p := range done {
		iface := ""
		for _, n := range cfg.Networks {
			if n.Name == p.Network {
				iface = n.Interface
			}
		}
		switch on, err := onDevice(iface, p.PublicKey); {
		case err != nil:
			fmt.Fprintf(io.Out, "Network %s does not run on this host (%v).\n", p.Network, err)
		case on:
			fmt.Fprintf(io.ErrOut, "warning: peer %s is still on %s; see the gateway's log\n", p.ID, iface)
		default:
			fmt.Fprintf(io.Out, "Peer %s is off %s (%s after the revocation began).\n", p.ID, iface, took)
		}
	}
	return len(done), nil
}

// onDevice reports whether the WireGuard device iface on this host has key.
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
