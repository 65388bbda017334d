package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/doctor"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
	"github.com/clearpath-vpn/clearpath/routes"
)

// doctor's --fix completes to the ids of the findings on the machine now:
// a namespace with our leftovers and a crashed wg-quick's rules.
func TestFixCompletesToTheFindings(t *testing.T) {
	ns := netnstest.New(t)
	env := &doctor.Env{
		System: func() (routes.System, error) { return routes.NewSystemAt(ns.Handle), nil },
		Agent:  func(context.Context) (*control.Status, error) { return nil, control.ErrNoAgent },
		Sysctl: func(string) string { return "0" },
		DNS:    func() []netip.Addr { return nil },
		Now:    time.Now,
	}
	if got := findingIDs(env); len(got) != 0 {
		t.Fatalf("healthy namespace: %v", got)
	}
	ns.IPIn("route", "add", "throw", "10.1.2.0/24", "table", "7411", "proto", "197")
	ns.IPIn("rule", "add", "priority", "32765", "not", "fwmark", "0xca6c", "lookup", "51820")
	ns.IPIn("rule", "add", "priority", "32764", "lookup", "main", "suppress_prefixlength", "0")
	if got := strings.Join(findingIDs(env), ","); got != "leftover-owned,orphan-rule" {
		t.Errorf("--fix candidates: %q", got)
	}
}
