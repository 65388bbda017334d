// Package peerscmd implements `vpn-gateway peers list` and `vpn-gateway
// peers revoke`, which work on the store named by --config and, for live
// figures and immediate effect, on the gateway running on this host.
package peerscmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/internal/units"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Schema names the format of `vpn-gateway peers list --json` (docs/JSON.md).
var Schema = jsonout.Schema("peers", 1)

// NewCmd returns `vpn-gateway peers`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "peers", Short: "List or revoke registered keys"}
	cmd.AddCommand(NewListCmd(f, nil), NewRevokeCmd(f, nil))
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
	// on this host (false when the gateway is not running here, or when
	// the peer is idle: the device holds active peers only, lazy peers).
	OnDevice bool `json:"on_device"`
}

// ListOptions are the inputs of `peers list`.
type ListOptions struct {
	IO                        cmdutil.IOStreams
	ConfigPath, Network, User string
	JSON                      bool
	Now                       func() time.Time
}

// NewListCmd returns `peers list`. runF replaces List in tests.
func NewListCmd(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Registered keys: user, network, address, last handshake, rx/tx, expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, List)
		},
	}
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
			PublicKey: p.PublicKey, CreatedAt: p.CreatedAt.UTC(), ExpiresAt: p.ExpiresAt.UTC(), Addresses: adminops.Addresses(p.Addr)}
		if q.User == "" {
			q.User = p.Subject
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
func List(ctx context.Context, o *ListOptions) error {
	cfg, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	subject := ""
	if o.User != "" {
		if subject, _, err = adminops.ResolveUser(ctx, st, o.User); err != nil {
			return err
		}
	}
	peers, notes, err := Gather(ctx, cfg, st, o.Network, subject)
	if err != nil {
		return err
	}
	if o.JSON {
		return jsonout.List(o.IO.Out, Schema, "peers", peers)
	}
	now := o.Now()
	t := cmdutil.NewTable(o.IO.Out, "USER", "NETWORK", "ADDRESS", "HOST", "LAST HANDSHAKE", "RX", "TX", "EXPIRES", "PEER")
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
		t.Row(api.Printable(p.User), p.Network, strings.Join(p.Addresses, ","), api.Printable(p.Hostname), hs, rx, tx, cmdutil.In(p.ExpiresAt, now), p.PeerID)
	}
	t.Flush()
	if len(peers) == 0 {
		fmt.Fprintln(o.IO.Out, "(no registered keys)")
	}
	for _, n := range notes {
		fmt.Fprintln(o.IO.ErrOut, "note:", n)
	}
	return nil
}

// RevokeOptions are the inputs of `peers revoke`.
type RevokeOptions struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	User       string
	PeerIDs    []string
	Network    string
	Reason     string
	// NoNotify skips telling the local gateway: it (and any other gateway
	// sharing the store) notices within lifecycle.store_poll.
	NoNotify bool
}

// NewRevokeCmd returns `peers revoke`. runF replaces Revoke in tests.
func NewRevokeCmd(f *cmdutil.Factory, runF func(context.Context, *RevokeOptions) error) *cobra.Command {
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
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, Revoke)
		},
	}
	cmd.Flags().StringSliceVar(&o.PeerIDs, "peer", nil, "peer id(s) to revoke (from `peers list`)")
	cmd.Flags().StringVar(&o.Network, "network", "", "only the user's key in this network")
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why, for the audit log and the webhook")
	cmd.Flags().BoolVar(&o.NoNotify, "no-notify", false, "do not poke the local gateway over its admin socket (it still notices within store_poll)")
	return cmd
}

// Revoke removes the matching peers from the store and audits each
// (adminops), then has the running gateway take them off its devices.
func Revoke(ctx context.Context, o *RevokeOptions) error {
	cfg, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	targets, err := adminops.Targets(ctx, st, o.User, o.PeerIDs, o.Network)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("nothing to revoke: no registered key matches")
	}
	start := time.Now()
	res, err := adminops.Revoke(ctx, st, adminops.LocalActor(), targets, o.Reason)
	n := ReportRevoked(ctx, o.IO, cfg, res, err != nil || o.NoNotify, start)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("nothing revoked")
	}
	return nil
}

// ReportRevoked prints what adminops.Revoke or adminops.Disable did and,
// unless noNotify, has the gateway on this host take the keys off its
// devices at once (adminops.NotifyGateway), saying how long it took from
// start. It returns how many keys were revoked.
func ReportRevoked(ctx context.Context, io cmdutil.IOStreams, cfg *config.Config, res []adminops.Revoked, noNotify bool, start time.Time) int {
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
		fmt.Fprintf(io.Out, "Revoked peer %s of %s in network %s (host %s).\n", p.ID, api.Printable(who), p.Network, cmdutil.Dash(api.Printable(p.Hostname)))
		done = append(done, p)
	}
	if len(done) == 0 || noNotify {
		return len(done)
	}
	a := adminops.NotifyGateway(ctx, cfg, done, start)
	switch {
	case a.NoGateway:
		fmt.Fprintf(io.Out, "No gateway runs on this host (%v); gateways sharing the store remove the key within %s.\n", a.Err, cfg.Lifecycle.StorePoll)
		return len(done)
	case a.Err != nil:
		fmt.Fprintf(io.ErrOut, "warning: telling the running gateway failed (%v); it notices within %s anyway\n", a.Err, cfg.Lifecycle.StorePoll)
		return len(done)
	}
	for _, p := range a.Peers {
		switch {
		case p.Err != nil:
			fmt.Fprintf(io.Out, "Network %s does not run on this host (%v).\n", p.Peer.Network, p.Err)
		case p.On:
			fmt.Fprintf(io.ErrOut, "warning: peer %s is still on %s; see the gateway's log\n", p.Peer.ID, p.Interface)
		default:
			fmt.Fprintf(io.Out, "Peer %s is off %s (%s after the revocation began).\n", p.Peer.ID, p.Interface, a.Took.Round(time.Millisecond))
		}
	}
	return len(done)
}
