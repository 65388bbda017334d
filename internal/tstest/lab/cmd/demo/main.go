// Command demo shows ClearPath working end to end in network namespaces on
// this machine: Dex, the gateway and a laptop running `vpn up`, narrated
// step by step. `make demo` builds what it needs and runs it; it needs root
// and always removes everything it created.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

func main() {
	user := flag.String("user", "alice", "lab user to log in as: alice, bob (engineering), carol (ops), dave (no group), erin (both)")
	pause := flag.Duration("pause", 0, "pause between steps (e.g. 2s when presenting)")
	flag.Parse()
	if err := run(*user, *pause); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

type demo struct {
	ctx   context.Context
	s     *stack.Stack
	c     *stack.Client
	step  int
	pause time.Duration
}

func (d *demo) say(title string, lines ...string) {
	if d.step > 0 && d.pause > 0 {
		time.Sleep(d.pause)
	}
	d.step++
	fmt.Printf("\n==> %d. %s\n", d.step, title)
	for _, l := range lines {
		fmt.Println("    " + l)
	}
}

// sh runs argv in node, printing it the way a user would type it on that
// machine, and its output indented. It returns the output and error.
func (d *demo) sh(node *lab.Node, argv ...string) (string, error) {
	shown := append([]string(nil), argv...)
	for i, a := range shown {
		if filepath.IsAbs(a) && strings.HasPrefix(filepath.Base(a), "vpn") {
			shown[i] = filepath.Base(a) // bin/vpn -> vpn
		}
	}
	fmt.Printf("\n    %s$ %s\n", node.Name, strings.Join(shown, " "))
	ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
	defer cancel()
	out, err := node.Exec(ctx, argv...)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Println("      " + l)
	}
	return out, err
}

func (d *demo) vpn(args ...string) (string, error) {
	return d.sh(d.s.Laptop, append([]string{d.s.Bin.VPN, "--state-dir", d.c.StateDir}, args...)...)
}

// side is what a network may reach and what it may not, for the narration.
type side struct {
	network, group           string
	okName, okIP4, okIP6     string
	denyName, denyIP4, owner string
}

var (
	engSide = side{"eng", "engineering", "vpc-a", lab.VPCAIP4, lab.VPCAIP6, "vpc-b", lab.VPCBIP4, "ops"}
	opsSide = side{"ops", "ops", "vpc-b", lab.VPCBIP4, lab.VPCBIP6, "vpc-a", lab.VPCAIP4, "engineering"}
)

func run(user string, pause time.Duration) error {
	u, ok := dex.LookupUser(user)
	if !ok {
		return fmt.Errorf("no lab user %q (try alice, bob, carol, dave or erin)", user)
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces: run it as root (sudo make demo)")
	}
	root, err := lab.RepoRoot()
	if err != nil {
		return err
	}
	bins, err := stack.Prebuilt(root)
	if err != nil {
		return err
	}
	ctx := context.Background()
	d := &demo{ctx: ctx, pause: pause}

	d.say("Building a small network out of namespaces",
		"Six network namespaces play six machines, joined by veth cables:",
		"",
		"  laptop --LAN 10.1.2.0/24-- host --internet 198.51.100.0/24-- gw --+-- idp   192.0.2.10 (Dex)",
		"                                                                     +-- vpc-a 10.10.0.0/16 (engineering)",
		"                                                                     +-- vpc-b 10.20.0.0/16 (ops)",
		"",
		"The VPCs are private: from the laptop they are reachable only through the VPN.",
		"Nothing on this machine's own network is touched.")
	ref, err := lab.NewReference(lab.Options{})
	if err != nil {
		return err
	}
	// lab also tears down on Ctrl-C; this covers every other way out.
	defer lab.RemoveCAFile()
	defer func() {
		fmt.Printf("\n==> %d. Cleaning up\n", d.step+1)
		if err := ref.Close(); err != nil {
			fmt.Println("    teardown:", err)
			return
		}
		fmt.Println("    Stopped every process and removed the namespaces " + ref.Prefix + "-*: nothing is left behind.")
	}()
	fmt.Printf("    Namespaces: %s-laptop, -host, -gw, -idp, -vpc-a, -vpc-b (logs in %s)\n", ref.Prefix, ref.Dir)

	svcA, err := lab.StartWhoAmI(ref.VPCA, "[::]:8000")
	if err != nil {
		return err
	}
	svcB, err := lab.StartWhoAmI(ref.VPCB, "[::]:8000")
	if err != nil {
		return err
	}

	d.say("Starting the identity provider and the gateway",
		"Dex (the company's OIDC provider) runs on idp; vpn-gateway on gw with two networks:",
		"  eng: group engineering, pool 100.64.0.0/24 + fd00:64::/64, may reach vpc-a",
		"  ops: group ops,         pool 100.65.0.0/24 + fd00:65::/64, may reach vpc-b",
		"Each network is its own WireGuard interface with its own routing table; no NAT.",
		"Each also pushes split DNS: corp.internal from vpc-a's server, ops.internal from vpc-b's.",
		"The gateway's API is HTTPS, with a certificate from a CA made for this run.")
	if err := startDNS(ref); err != nil {
		return err
	}
	s, err := stack.Start(ctx, ref, bins, dnsOptions()...)
	if err != nil {
		return err
	}
	d.s = s
	d.c = s.Client(user)
	// The user's config dir (tokens, remembered --ca-file) stays in the lab.
	os.Setenv("CLEARPATH_CONFIG_DIR", d.c.ConfigDir)
	if _, err := d.sh(s.GW, "wg", "show", s.EngIface); err != nil {
		return err
	}

	d.say("Logging in as "+user,
		"A person would log in through the browser; the demo uses Dex's password grant",
		"and hands the ID token to `vpn up --token-file`, the automation path.")
	tok, err := s.Dex.Login(ctx, dex.ClientID, user)
	if err != nil {
		return err
	}
	claims, _ := dex.Claims(tok.IDToken)
	fmt.Printf("    token for %v, groups %v, audience %v, valid until %s\n",
		claims["email"], claims["groups"], claims["aud"], time.Unix(int64(claims["exp"].(float64)), 0).Format(time.TimeOnly))
	tokenFile, err := s.WriteToken(user, tok.IDToken)
	if err != nil {
		return err
	}

	var sd side
	var upArgs []string
	switch {
	case slices.Contains(u.Groups, "engineering") && slices.Contains(u.Groups, "ops"):
		sd = engSide
		upArgs = []string{"--network", "eng"}
		fmt.Printf("    %s is in engineering and ops, so she picks a network: --network eng\n", user)
	case slices.Contains(u.Groups, "engineering"):
		sd = engSide
	case slices.Contains(u.Groups, "ops"):
		sd = opsSide
	}
	svc := map[string]*lab.WhoAmI{"vpc-a": svcA, "vpc-b": svcB}[sd.okName]

	d.say("The laptop before connecting",
		"Its routing table and rules, to compare after `vpn down`. The VPCs are out of reach:")
	before, err := s.Laptop.RoutingState(ctx)
	if err != nil {
		return err
	}
	d.sh(s.Laptop, "ip", "route")
	d.sh(s.Laptop, "ip", "rule")
	d.sh(s.Laptop, "curl", "-sS", "--max-time", "2", "http://"+lab.VPCAIP4+":8000/")
	d.sh(s.Laptop, "getent", "hosts", "db.corp.internal")

	if sd.network == "" {
		d.say("Connecting: vpn up, as a user in no group",
			user+" is in no group the gateway serves, so the gateway refuses (403) and",
			"vpn up changes nothing:")
		if _, err := d.vpn("up", "--server", stack.ServerURL, "--token-file", tokenFile, "--interface", d.c.Iface); err == nil {
			return errors.New("vpn up succeeded for a user in no group")
		}
		return checkRestored(d, before)
	}

	d.say("Plain http is refused",
		"The client sends its token only over HTTPS (or to this machine itself): asked to",
		"use http:// to the gateway, it refuses before connecting and says why:")
	plain := strings.Replace(stack.ServerURL, "https://", "http://", 1)
	if _, err := d.vpn("up", "--server", plain, "--token-file", tokenFile, "--interface", d.c.Iface); err == nil {
		return errors.New("vpn up accepted plain http without --allow-http")
	}

	d.say("Connecting: vpn up",
		"The client creates a device key (the private key never leaves the laptop),",
		"registers its public key with the gateway using the token, brings up a",
		"WireGuard tunnel and returns only once a reply came back through it.",
		"--ca-file names the lab's CA (remembered for this server), as a company CA would be.")
	if _, err := d.vpn(append([]string{"up", "--server", stack.ServerURL, "--ca-file", s.CAFile, "--token-file", tokenFile, "--interface", d.c.Iface}, upArgs...)...); err != nil {
		return err
	}

	d.say("Reaching "+sd.okName+" through the tunnel",
		"A small web service in "+sd.okName+" answers with the source address it saw:",
		"it is the laptop's own tunnel address, not the gateway's (no NAT). IPv4 and IPv6.")
	if _, err := d.sh(s.Laptop, "curl", "-sS", "--max-time", "5", "http://"+sd.okIP4+":8000/"); err != nil {
		return err
	}
	if _, err := d.sh(s.Laptop, "curl", "-sS", "--max-time", "5", "http://["+sd.okIP6+"]:8000/"); err != nil {
		return err
	}
	fmt.Printf("    %s's service logged these sources: %v\n", sd.okName, svc.Seen())
	if err := splitDNSStep(d, sd.network); err != nil {
		return err
	}

	d.say("Status", "What the client knows about the tunnel:")
	if _, err := d.vpn("status"); err != nil {
		return err
	}

	d.say(sd.denyName+" is not for "+sd.group,
		sd.denyName+" belongs to the "+sd.owner+" network. The client routes nothing there, and the",
		"gateway would drop it anyway (its table for "+sd.network+" blackholes all but "+sd.okName+"):")
	if _, err := d.sh(s.Laptop, "curl", "-sS", "--max-time", "3", "http://"+sd.denyIP4+":8000/"); err == nil {
		return errors.New(sd.denyName + " answered, but the user's network does not allow it")
	}

	d.say("Route hygiene check: vpn doctor")
	if _, err := s.Laptop.Exec(ctx, s.Bin.VPN, "doctor", "--help"); err != nil {
		fmt.Println("    (vpn doctor is not part of this build yet; skipping)")
	} else if _, err := d.vpn("doctor"); err != nil {
		fmt.Println("    (doctor reported problems, see above)")
	}

	d.say("Disconnecting: vpn down",
		"The agent undoes every change it journaled and checks the table is back.")
	if _, err := d.vpn("down"); err != nil {
		return err
	}
	if err := checkRestored(d, before); err != nil {
		return err
	}
	if err := dnsAfterDown(d, sd.network); err != nil {
		return err
	}
	return breakAndRepair(d, tokenFile, upArgs, before)
}

// breakAndRepair crashes a session on purpose (kill -9 of the agent), adds
// what a crashed wg-quick leaves, and lets vpn doctor name and repair both.
func breakAndRepair(d *demo, tokenFile string, upArgs []string, before string) error {
	d.say("When the network breaks: a VPN killed with kill -9",
		"Connect again, then kill the agent the hard way, as a force-quit or a power cut",
		"would (resolv.conf still names its dead stub), and add the rules a crashed",
		"wg-quick leaves behind (its table is gone):")
	if _, err := d.vpn(append([]string{"up", "--server", stack.ServerURL, "--token-file", tokenFile, "--interface", d.c.Iface}, upArgs...)...); err != nil {
		return err
	}
	pid, err := os.ReadFile(filepath.Join(d.c.StateDir, "agent.pid"))
	if err != nil {
		return fmt.Errorf("read the agent's pid: %w", err)
	}
	if _, err := d.sh(d.s.Laptop, "kill", "-9", strings.TrimSpace(string(pid))); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"ip", "rule", "add", "priority", "32765", "not", "fwmark", "0xca6c", "lookup", "51820"},
		{"ip", "rule", "add", "priority", "32764", "lookup", "main", "suppress_prefixlength", "0"},
	} {
		if _, err := d.sh(d.s.Laptop, argv...); err != nil {
			return err
		}
	}
	time.Sleep(200 * time.Millisecond) // let the kernel drop the dead tunnel device

	d.say("vpn doctor",
		"Each problem with its evidence, why it matters and the exact fix (exit status 1):")
	if _, err := d.vpn("doctor"); err == nil {
		return errors.New("vpn doctor found nothing on a broken laptop")
	}

	d.say("vpn doctor --fix, then --fix orphan-rule",
		"A bare --fix removes only ClearPath's own leftovers; another program's are",
		"removed only when you name the finding:")
	if _, err := d.vpn("doctor", "--fix"); err == nil {
		return errors.New("after a bare --fix wg-quick's rules must still be reported")
	}
	if _, err := d.vpn("doctor", "--fix", "orphan-rule"); err != nil {
		return fmt.Errorf("vpn doctor --fix orphan-rule left problems: %w", err)
	}
	if err := checkResolvConf(d); err != nil { // the dead stub's resolv.conf: bare --fix
		return err
	}
	return checkRestored(d, before)
}

// checkRestored shows the laptop's routing and compares it with before.
func checkRestored(d *demo, before string) error {
	after, err := d.s.Laptop.RoutingState(d.ctx)
	if err != nil {
		return err
	}
	d.sh(d.s.Laptop, "ip", "route")
	d.sh(d.s.Laptop, "ip", "rule")
	if after != before {
		fmt.Printf("\n    Routing differs from before `vpn up`!\n--- before\n%s\n--- after\n%s\n", before, after)
		return errors.New("routing table not restored")
	}
	fmt.Println("\n    Routes (all tables, IPv4 and IPv6) and rules are exactly as before `vpn up`.")
	return nil
}
