package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/doctor"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/login"
)

// Dynamic shell completion, added to the whole tree at once: --server
// from the servers this user logged in to, --network from the networks
// the gateway offers this user's cached login (asked for 2 s at most),
// doctor's --fix from the ids of the findings on this machine now.
func addCompletions(root *cobra.Command, f *factory.Factory) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		reg := func(name string, fn func(*cobra.Command) []string) {
			if c.Flags().Lookup(name) == nil {
				return
			}
			c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
				var out []string
				for _, s := range fn(cmd) {
					if strings.HasPrefix(s, prefix) {
						out = append(out, s)
					}
				}
				return out, cobra.ShellCompDirectiveNoFileComp
			})
		}
		if c.Name() != "agent" {
			reg("server", func(*cobra.Command) []string { return cachedServers() })
		}
		reg("network", offeredNetworks)
		if c.Name() == "doctor" {
			reg("fix", func(*cobra.Command) []string { return findingIDs(doctor.LiveEnv(f)) })
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func cachedServers() []string {
	cache, err := auth.DefaultCache()
	if err != nil {
		return nil
	}
	return cache.Servers()
}

// offeredNetworks asks the gateway (--server, else the last login) which
// networks the cached login may join; nothing when there is no valid
// login or no answer within 2 s.
func offeredNetworks(cmd *cobra.Command) []string {
	cache, err := auth.DefaultCache()
	if err != nil {
		return nil
	}
	server := ""
	if fl := cmd.Flags().Lookup("server"); fl != nil {
		server = fl.Value.String()
	}
	if server, err = login.ResolveServer(cache, server); err != nil {
		return nil
	}
	t, err := cache.Load(server)
	if err != nil || t == nil || t.IDToken == "" || time.Now().After(t.Expiry) {
		return nil
	}
	tr, err := login.ResolveTrust(cache, server, login.TrustFlags{}, io.Discard)
	if err != nil {
		return nil
	}
	gw, err := gwapi.New(server)
	if err != nil {
		return nil
	}
	if tr.HTTP != nil {
		gw = gw.WithHTTPClient(tr.HTTP)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	nl, err := gw.Networks(ctx, t.IDToken)
	if err != nil {
		return nil
	}
	var names []string
	for _, n := range nl.Networks {
		names = append(names, n.Name)
	}
	return names
}

// findingIDs runs the doctor (no DNS probe) and lists its findings' ids.
func findingIDs(env *doctor.Env) []string {
	var b bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	doctor.Run(ctx, &b, env, &doctor.Options{JSON: true, NoDNS: true})
	var rep struct {
		Findings []struct {
			ID string `json:"id"`
		} `json:"findings"`
	}
	if json.Unmarshal(b.Bytes(), &rep) != nil {
		return nil
	}
	var ids []string
	for _, fd := range rep.Findings {
		ids = append(ids, fd.ID)
	}
	return ids
}
