// Package devicescmd implements `vpn-gateway devices list` and `vpn-gateway
// devices free`: the address allocations of every user's devices, live or
// kept for a revoked, deleted or expired device until its grace period
// (allocation_grace) ends, and freeing one now.
package devicescmd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Schema names the format of `vpn-gateway devices list --json` (docs/JSON.md).
var Schema = jsonout.Schema("devices", 1)

// NewCmd returns `vpn-gateway devices`.
func NewCmd(io cmdutil.IO) *cobra.Command {
	cmd := &cobra.Command{Use: "devices", Short: "List users' devices and their addresses, or free an address"}
	cmd.AddCommand(newList(io), newFree(io))
	return cmd
}

// Device is one line of `devices list --json`.
type Device struct {
	User      string     `json:"user"`
	Email     string     `json:"email,omitempty"`
	Subject   string     `json:"subject"`
	Network   string     `json:"network"`
	Device    string     `json:"device"`
	Hostname  string     `json:"hostname,omitempty"`
	Addresses []string   `json:"addresses"`
	State     string     `json:"state"`
	PeerID    string     `json:"peer_id,omitempty"`
	FreedAt   *time.Time `json:"freed_at,omitempty"`
}

// ListOptions are the flags of `devices list`.
type ListOptions struct {
	ConfigPath, Network, User string
	JSON                      bool
	Now                       func() time.Time
}

func newList(io cmdutil.IO) *cobra.Command {
	o := &ListOptions{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Devices: user, device id, host, addresses, state (live, revoked, expired, deleted), when the address is freed",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return List(cmd.Context(), io, o) },
	}
	cmdutil.ConfigFlag(cmd, &o.ConfigPath)
	cmd.Flags().StringVar(&o.Network, "network", "", "only this network")
	cmd.Flags().StringVar(&o.User, "user", "", "only this user (e-mail, subject or the part before @)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (schema "+Schema+")")
	return cmd
}

// List prints the devices.
func List(ctx context.Context, io cmdutil.IO, o *ListOptions) error {
	cfg, st, err := cmdutil.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetAllocationGrace(cfg.AllocationGrace)
	subject := ""
	if o.User != "" {
		if subject, err = resolve(ctx, st, o.User); err != nil {
			return err
		}
	}
	all, err := st.Devices(ctx, o.Network)
	if err != nil {
		return err
	}
	out := []Device{}
	for _, d := range all {
		if subject != "" && d.Subject != subject {
			continue
		}
		out = append(out, convert(d))
	}
	if o.JSON {
		return jsonout.List(io.Out, Schema, "devices", out)
	}
	now := o.Now()
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tNETWORK\tDEVICE\tHOST\tADDRESS\tSTATE\tFREED")
	for _, d := range out {
		freed := "-"
		if d.FreedAt != nil {
			freed = cmdutil.In(*d.FreedAt, now)
			if !d.FreedAt.After(now) {
				freed = "at the next sweep"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", api.Printable(d.User), d.Network, d.Device, dash(api.Printable(d.Hostname)), strings.Join(d.Addresses, ","), d.State, freed)
	}
	tw.Flush()
	if len(out) == 0 {
		fmt.Fprintln(io.Out, "(no devices)")
	}
	return nil
}

func convert(d store.DeviceInfo) Device {
	q := Device{User: d.Email, Email: d.Email, Subject: d.Subject, Network: d.Network, Device: d.Device, Hostname: d.Hostname, State: d.State, PeerID: d.PeerID, Addresses: []string{}}
	if q.User == "" {
		q.User = d.Subject
	}
	for _, a := range []netip.Addr{d.Addr.V4, d.Addr.V6} {
		if a.IsValid() {
			q.Addresses = append(q.Addresses, a.String())
		}
	}
	if !d.FreedAt.IsZero() {
		t := d.FreedAt.UTC()
		q.FreedAt = &t
	}
	return q
}

// resolve finds the subject an administrator named; users whose only
// trace is an allocation (their peers gone) are found too.
func resolve(ctx context.Context, st *store.Store, name string) (string, error) {
	subject, _, err := cmdutil.ResolveUser(ctx, st, name)
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

// FreeOptions are the flags of `devices free`.
type FreeOptions struct {
	ConfigPath, User, Network, Device string
	// Revoke lets a live device's key be revoked with it.
	Revoke   bool
	NoNotify bool
}

func newFree(io cmdutil.IO) *cobra.Command {
	o := &FreeOptions{}
	cmd := &cobra.Command{
		Use:   "free --user USER --device ID [--network NAME]",
		Short: "Free a device's addresses now, before its grace period ends (--revoke for a device whose key is still valid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.User == "" || o.Device == "" {
				return errors.New("name the device: --user USER --device ID (see `vpn-gateway devices list`)")
			}
			return Free(cmd.Context(), io, o)
		},
	}
	cmdutil.ConfigFlag(cmd, &o.ConfigPath)
	cmd.Flags().StringVar(&o.User, "user", "", "the device's user (e-mail or subject)")
	cmd.Flags().StringVar(&o.Device, "device", "", "the device id (from `devices list`)")
	cmd.Flags().StringVar(&o.Network, "network", "", "the network (needed when the device is in several)")
	cmd.Flags().BoolVar(&o.Revoke, "revoke", false, "also revoke the device's key if it is still valid")
	cmd.Flags().BoolVar(&o.NoNotify, "no-notify", false, "do not poke the local gateway over its admin socket (it still notices within store_poll)")
	return cmd
}

// Free frees the named device's addresses, audited, and tells the local
// gateway when a key was revoked with them.
func Free(ctx context.Context, io cmdutil.IO, o *FreeOptions) error {
	cfg, st, err := cmdutil.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetAllocationGrace(cfg.AllocationGrace)
	subject, err := resolve(ctx, st, o.User)
	if err != nil {
		return err
	}
	network := o.Network
	if network == "" {
		all, err := st.Devices(ctx, "")
		if err != nil {
			return err
		}
		var nets []string
		for _, d := range all {
			if d.Subject == subject && d.Device == o.Device {
				nets = append(nets, d.Network)
			}
		}
		switch len(nets) {
		case 0:
			return fmt.Errorf("user %s has no device %s: see `vpn-gateway devices list --user %s`", o.User, o.Device, o.User)
		case 1:
			network = nets[0]
		default:
			return fmt.Errorf("device %s of %s is in several networks (%s): name one with --network", o.Device, o.User, strings.Join(nets, ", "))
		}
	}
	d, err := st.FreeDevice(ctx, subject, network, o.Device, o.Revoke)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("user %s has no device %s in network %s: see `vpn-gateway devices list --user %s`", o.User, o.Device, network, o.User)
	case errors.Is(err, store.ErrDeviceLive):
		return fmt.Errorf("%v; add --revoke to revoke its key and free its addresses", err)
	case err != nil:
		return err
	}
	q := convert(*d)
	addrs := strings.Join(q.Addresses, " ")
	revoked := d.State == store.StateLive && d.PeerID != ""
	if revoked {
		if err := st.Record(ctx, store.AuditRecord{Actor: cmdutil.Actor(), Action: audit.Revoke, Subject: d.Subject, Email: d.Email, Network: network, PeerID: d.PeerID,
			Remote: cmdutil.Remote(), Detail: fmt.Sprintf("key of %s revoked to free its addresses", dash(api.Printable(d.Hostname)))}); err != nil {
			return err
		}
	}
	if err := st.Record(ctx, store.AuditRecord{Actor: cmdutil.Actor(), Action: audit.Free, Subject: d.Subject, Email: d.Email, Network: network, PeerID: d.PeerID,
		Remote: cmdutil.Remote(), Detail: fmt.Sprintf("addresses %s of device %s (%s, %s) freed by an administrator", addrs, d.Device, dash(api.Printable(d.Hostname)), d.State)}); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "Freed %s of device %s (%s) of %s in network %s (was %s).\n", addrs, d.Device, dash(api.Printable(d.Hostname)), api.Printable(q.User), network, d.State)
	if !revoked || o.NoNotify {
		return nil
	}
	if _, err := (admin.Client{Path: cfg.AdminSocket}).Sync(ctx); err != nil {
		fmt.Fprintf(io.Out, "The key of peer %s was revoked; gateways take it off their devices within %s (%v).\n", d.PeerID, cfg.Lifecycle.StorePoll, err)
		return nil
	}
	fmt.Fprintf(io.Out, "The key of peer %s was revoked and is off this host's device.\n", d.PeerID)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
