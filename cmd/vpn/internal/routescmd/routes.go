// Package routescmd implements `vpn routes`: show, snapshot, diff, restore, dns.
package routescmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/routes"
)

// NewCmd returns `vpn routes`. sys, when non-nil, replaces the live system (tests).
func NewCmd(f *factory.Factory, sys func() (routes.System, error)) *cobra.Command {
	if sys == nil {
		sys = routes.NewSystem
	}
	cmd := &cobra.Command{Use: "routes", Short: "Inspect, snapshot, diff and restore the routing table"}
	var all, asJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the routes, rules and tunnel addresses ClearPath installed (--all: everything, ours marked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := sys()
			if err != nil {
				return err
			}
			snap, err := s.Snapshot()
			if err != nil {
				return err
			}
			ours := routes.OwnedDevices(snap, agentInterface(cmd.Context(), f))
			if !all {
				snap.Routes, snap.Rules = routes.OwnedItems(snap)
				snap.Addresses = routes.LinkAddresses(snap, ours...)
				links := snap.Links[:0:0]
				for _, l := range snap.Links {
					if slices.Contains(ours, l.Name) {
						links = append(links, l)
					}
				}
				snap.Links = links
			}
			if asJSON {
				// Lists are [] when empty, never null.
				if snap.Routes == nil {
					snap.Routes = []routes.Route{}
				}
				if snap.Rules == nil {
					snap.Rules = []routes.Rule{}
				}
				if snap.Links == nil {
					snap.Links = []routes.Link{}
				}
				if snap.Addresses == nil {
					snap.Addresses = []routes.Address{}
				}
				return jsonout.Write(f.Out, Schema, snap)
			}
			printSnapshot(f.Out, snap, ours)
			return nil
		},
	}
	show.Flags().BoolVar(&all, "all", false, "show every route and rule, not only ours")
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema "+Schema+")")

	var out string
	snapshot := &cobra.Command{
		Use:   "snapshot",
		Short: "Save every route, rule, link and address to a file (JSON)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			s, err := sys()
			if err != nil {
				return err
			}
			snap, err := s.Snapshot()
			if err != nil {
				return err
			}
			w := f.Out
			if out != "" && out != "-" {
				file, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			if err := writeJSON(w, snap); err != nil {
				return err
			}
			if w != f.Out {
				fmt.Fprintf(f.ErrOut, "saved %d routes and %d rules to %s\n", len(snap.Routes), len(snap.Rules), out)
			}
			return nil
		},
	}
	snapshot.Flags().StringVarP(&out, "output", "o", "-", "file to write (- for stdout)")

	diff := &cobra.Command{
		Use:   "diff FILE",
		Short: "Show what changed since a snapshot; exit 1 when something did",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var before routes.Snapshot
			if err := json.Unmarshal(data, &before); err != nil {
				return fmt.Errorf("%s is not a snapshot: %w", args[0], err)
			}
			s, err := sys()
			if err != nil {
				return err
			}
			now, err := s.Snapshot()
			if err != nil {
				return err
			}
			d := routes.Compare(&before, now)
			if d.Empty() {
				fmt.Fprintln(f.Out, "no difference")
				return nil
			}
			for _, r := range d.RemovedRoutes {
				fmt.Fprintf(f.Out, "- route %s%s\n", r, owner(r.Protocol))
			}
			for _, r := range d.AddedRoutes {
				fmt.Fprintf(f.Out, "+ route %s%s\n", r, owner(r.Protocol))
			}
			for _, r := range d.RemovedRules {
				fmt.Fprintf(f.Out, "- rule  %s%s\n", r, owner(r.Protocol))
			}
			for _, r := range d.AddedRules {
				fmt.Fprintf(f.Out, "+ rule  %s%s\n", r, owner(r.Protocol))
			}
			return cmdutil.Exit(1, errors.New("the routing table differs from the snapshot"))
		},
	}

	restore := &cobra.Command{
		Use:   "restore",
		Short: "Replay the journal in reverse and remove every leftover route or rule of ours; put resolv.conf back",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := f.Control().Status(cmd.Context()); err == nil {
				return fmt.Errorf("an agent is running: use `vpn down` to end its session")
			}
			s, err := sys()
			if err != nil {
				return err
			}
			rec, err := agent.RecoverOffline(f.StateDir, s)
			if err != nil {
				return err
			}
			if warn, done := rec.DNSNotes(); warn != "" {
				fmt.Fprintf(f.ErrOut, "warning: %s\n", warn)
			} else if done != "" {
				fmt.Fprintln(f.Out, done)
			}
			rep := rec.Routes
			if rep == nil {
				rep = &routes.Report{}
			}
			fmt.Fprintf(f.Out, "%d changes undone, %d leftovers removed\n", len(rep.Undone), len(rep.Swept))
			for _, c := range append(rep.Undone, rep.Swept...) {
				fmt.Fprintf(f.Out, "  %s\n", c)
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(f.ErrOut, "warning: %s\n", p)
			}
			return nil
		},
	}
	dnsCmd := &cobra.Command{
		Use:   "dns",
		Short: "Show the resolver changes the DNS journal holds versus now; exit 1 when they differ",
		Long: `Compares what ClearPath's DNS journal recorded before it changed the
resolver (resolv.conf pointed at the stub, or a systemd-resolved link's
servers and routing domains, macOS's /etc/resolver files) with the machine now: the lines of the file
from before that are gone (-) and those in it now (+), and whether
` + "`vpn down`/`vpn routes restore`" + ` will put it back.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			ds, err := DNSDiff(f.StateDir)
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				fmt.Fprintln(f.Out, "no DNS change journaled")
				return nil
			}
			differs := false
			for _, d := range ds {
				fmt.Fprintf(f.Out, "%s: %s\n", d.What, d.State)
				for _, l := range d.Lines {
					fmt.Fprintf(f.Out, "  %s\n", l)
				}
				differs = differs || d.Differs
			}
			if differs {
				return cmdutil.Exit(1, errors.New("the resolver differs from what the DNS journal recorded"))
			}
			return nil
		},
	}
	cmd.AddCommand(show, snapshot, diff, restore, dnsCmd)
	return cmd
}

func owner(proto int) string {
	if proto == routes.Protocol {
		return "   [clearpath]"
	}
	return ""
}

// Schema names the format of `vpn routes show --json` (docs/JSON.md).
var Schema = jsonout.Schema("routes", 1)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// agentInterface is the running agent's tunnel device ("" when none
// answers): it is ours even before a route points at it.
func agentInterface(ctx context.Context, f *factory.Factory) string {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := f.Control().Status(ctx)
	if err != nil || st.State == control.StateDown {
		return ""
	}
	return st.Interface
}

func printSnapshot(w io.Writer, snap *routes.Snapshot, ours []string) {
	rs := append([]routes.Route(nil), snap.Routes...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Table < rs[j].Table })
	fmt.Fprintf(w, "routes (%d):\n", len(rs))
	for _, r := range rs {
		fmt.Fprintf(w, "  %s%s\n", r, owner(r.Protocol))
	}
	fmt.Fprintf(w, "rules (%d):\n", len(snap.Rules))
	for _, r := range snap.Rules {
		fmt.Fprintf(w, "  %s%s\n", r, owner(r.Protocol))
	}
	fmt.Fprintf(w, "addresses (%d):\n", len(snap.Addresses))
	for _, a := range snap.Addresses {
		mark := ""
		if slices.Contains(ours, a.Device) {
			mark = "   [clearpath]"
		}
		fmt.Fprintf(w, "  %s dev %s%s\n", a.Prefix, a.Device, mark)
	}
}

// DNSDiff reads the DNS journal in stateDir and compares it with the
// machine now (none: no journal).
func DNSDiff(stateDir string) ([]splitdns.Diff, error) {
	pending, err := splitdns.Pending(stateDir)
	if err != nil {
		return nil, fmt.Errorf("read the journals: %w", err)
	}
	var out []splitdns.Diff
	if pending.Resolver != nil {
		out = splitdns.DiffResolverDir(pending.Resolver)
	}
	j := pending.DNS
	if j == nil {
		return out, nil
	}
	if j.Mode == splitdns.ModeResolved {
		name := ""
		if ifc, err := net.InterfaceByIndex(j.Index); err == nil {
			name = ifc.Name
		}
		return append(out, splitdns.DiffLink(j, name)), nil
	}
	now, err := os.ReadFile(j.Path)
	missing := errors.Is(err, os.ErrNotExist)
	if err != nil && !missing {
		return nil, fmt.Errorf("read %s: %w", j.Path, err)
	}
	return append(out, splitdns.DiffFile(j, now, missing)), nil
}
