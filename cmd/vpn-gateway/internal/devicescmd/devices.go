// Package devicescmd implements `vpn-gateway devices list` and `vpn-gateway
// devices free`: the address allocations of every user's devices, live or
// kept for a revoked, deleted or expired device until its grace period
// (allocation_grace) ends, and freeing one now.
package devicescmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Schema names the format of `vpn-gateway devices list --json` (docs/JSON.md).
var Schema = jsonout.Schema("devices", 1)

// NewCmd returns `vpn-gateway devices`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "devices", Short: "List users' devices and their addresses, or free an address"}
	cmd.AddCommand(NewListCmd(f, nil), NewFreeCmd(f, nil))
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

// ListOptions are the inputs of `devices list`.
type ListOptions struct {
	IO                        cmdutil.IOStreams
	ConfigPath, Network, User string
	JSON                      bool
	Now                       func() time.Time
}

// NewListCmd returns `devices list`. runF replaces List in tests.
func NewListCmd(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Devices: user, device id, host, addresses, state (live, revoked, expired, deleted), when the address is freed",
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

// List prints the devices.
func List(ctx context.Context, o *ListOptions) error {
	_, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	subject := ""
	if o.User != "" {
		if subject, err = adminops.ResolveDeviceUser(ctx, st, o.User); err != nil {
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
		return jsonout.List(o.IO.Out, Schema, "devices", out)
	}
	now := o.Now()
	t := cmdutil.NewTable(o.IO.Out, "USER", "NETWORK", "DEVICE", "HOST", "ADDRESS", "STATE", "FREED")
	for _, d := range out {
		freed := "-"
		if d.FreedAt != nil {
			freed = cmdutil.In(*d.FreedAt, now)
			if !d.FreedAt.After(now) {
				freed = "at the next sweep"
			}
		}
		t.Row(api.Printable(d.User), d.Network, d.Device, api.Printable(d.Hostname), strings.Join(d.Addresses, ","), d.State, freed)
	}
	t.Flush()
	if len(out) == 0 {
		fmt.Fprintln(o.IO.Out, "(no devices)")
	}
	return nil
}

func convert(d store.DeviceInfo) Device {
	q := Device{User: d.Email, Email: d.Email, Subject: d.Subject, Network: d.Network, Device: d.Device, Hostname: d.Hostname, State: d.State, PeerID: d.PeerID, Addresses: adminops.Addresses(d.Addr)}
	if q.User == "" {
		q.User = d.Subject
	}
	if !d.FreedAt.IsZero() {
		t := d.FreedAt.UTC()
		q.FreedAt = &t
	}
	return q
}

// FreeOptions are the inputs of `devices free`.
type FreeOptions struct {
	IO                                cmdutil.IOStreams
	ConfigPath, User, Network, Device string
	// Revoke lets a live device's key be revoked with it.
	Revoke   bool
	NoNotify bool
}

// NewFreeCmd returns `devices free`. runF replaces Free in tests.
func NewFreeCmd(f *cmdutil.Factory, runF func(context.Context, *FreeOptions) error) *cobra.Command {
	o := &FreeOptions{}
	cmd := &cobra.Command{
		Use:   "free --user USER --device ID [--network NAME]",
		Short: "Free a device's addresses now, before its grace period ends (--revoke for a device whose key is still valid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.User == "" || o.Device == "" {
				return errors.New("name the device: --user USER --device ID (see `vpn-gateway devices list`)")
			}
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, Free)
		},
	}
	cmd.Flags().StringVar(&o.User, "user", "", "the device's user (e-mail or subject)")
	cmd.Flags().StringVar(&o.Device, "device", "", "the device id (from `devices list`)")
	cmd.Flags().StringVar(&o.Network, "network", "", "the network (needed when the device is in several)")
	cmd.Flags().BoolVar(&o.Revoke, "revoke", false, "also revoke the device's key if it is still valid")
	cmd.Flags().BoolVar(&o.NoNotify, "no-notify", false, "do not poke the local gateway over its admin socket (it still notices within store_poll)")
	return cmd
}

// Free frees the named device's addresses (adminops.FreeDevice) and tells
// the local gateway when a key was revoked with them.
func Free(ctx context.Context, o *FreeOptions) error {
	cfg, st, err := adminops.Open(ctx, o.ConfigPath)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	res, err := adminops.FreeDevice(ctx, st, adminops.LocalActor(), o.User, o.Network, o.Device, o.Revoke)
	if err != nil {
		return err
	}
	d, q := res.Device, convert(res.Device)
	fmt.Fprintf(o.IO.Out, "Freed %s of device %s (%s) of %s in network %s (was %s).\n", strings.Join(q.Addresses, " "), d.Device, cmdutil.Dash(api.Printable(d.Hostname)), api.Printable(q.User), d.Network, d.State)
	if !res.Revoked || o.NoNotify {
		return nil
	}
	if a := adminops.NotifyGateway(ctx, cfg, nil, start); a.Err != nil {
		fmt.Fprintf(o.IO.Out, "The key of peer %s was revoked; gateways take it off their devices within %s (%v).\n", d.PeerID, cfg.Lifecycle.StorePoll, a.Err)
		return nil
	}
	fmt.Fprintf(o.IO.Out, "The key of peer %s was revoked and is off this host's device.\n", d.PeerID)
	return nil
}
