// Command tunnelbench measures tunnels side by side on this machine: the
// bare veth, ClearPath (`vpn up` against `vpn-gateway serve`), the reference
// wireguard-go and OpenVPN 2.6, in interleaved rounds, in two network
// namespaces joined by one veth pair, each end pinned to its own core. It
// writes the raw figures (TSV) and a markdown table of medians to -out.
//
// `make bench` builds what it needs and runs it; see bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
)

type options struct {
	rounds   int
	duration time.Duration
	out      string
	bin      binaries
	only     string
	ablation bool
	variants variantFlag
}

// variantFlag collects -variant "label:KEY=V,KEY2=V" (ClearPath run with
// extra environment, for exploring tuning).
type variantFlag []string

func (v *variantFlag) String() string     { return strings.Join(*v, ";") }
func (v *variantFlag) Set(s string) error { *v = append(*v, s); return nil }

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (A B C D, A B C D, ...)")
	flag.DurationVar(&o.duration, "t", 5*time.Second, "length of each iperf3 test (plus 1 s omitted warm-up)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the TSV and markdown results")
	flag.StringVar(&o.bin.VPN, "vpn", "bin/vpn", "vpn binary")
	flag.StringVar(&o.bin.Gateway, "gateway", "bin/vpn-gateway", "vpn-gateway binary")
	flag.StringVar(&o.bin.WireGuardGo, "wireguard-go", "bin/wireguard-go", "reference wireguard-go binary")
	flag.StringVar(&o.bin.OpenVPN, "openvpn", "openvpn", "openvpn binary")
	flag.StringVar(&o.only, "only", "", "comma-separated subset of: bare,ours,wg,openvpn,stock,nomemlimit,gwlimit,service (default all)")
	flag.BoolVar(&o.ablation, "ablation", true, "also run ClearPath with its tuning switched off (stock, no memory limit)")
	flag.Var(&o.variants, "variant", `extra ClearPath row "label:KEY=V,KEY2=V" with that environment for agent and gateway (repeatable)`)
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, TUN devices)")
	}
	var err error
	for _, p := range []*string{&o.bin.VPN, &o.bin.Gateway, &o.bin.WireGuardGo} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
		if _, err := os.Stat(*p); err != nil {
			return fmt.Errorf("%s missing: run `make bench` (it builds it)", *p)
		}
	}
	if o.bin.Dex, err = dex.Binary(); err != nil {
		return err
	}
	started := time.Now()
	info := machineInfo()
	info.LoadStart = loadAverage()
	log.Info("tunnelbench", "rounds", o.rounds, "iperf", o.duration, "machine", info.CPU, "load", info.LoadStart)

	l, err := lab.New(lab.Options{Logger: log})
	if err != nil {
		return err
	}
	defer l.Close()
	e, err := buildEnv(l, o.bin)
	if err != nil {
		return err
	}
	// Our own files live outside the lab directory: /tmp/cplab-* is swept
	// by other runs' cleanups on a shared machine.
	if e.dir, err = os.MkdirTemp("", "tunnelbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(e.dir)
	d, err := dex.Start(ctx, e.idp, "dex", o.bin.Dex, dex.Config{})
	if err != nil {
		return err
	}

	tunnels, err := makeTunnels(ctx, e, d, o)
	if err != nil {
		return err
	}
	var rs results
	rs.Info = info
	for round := 1; round <= o.rounds; round++ {
		for _, t := range tunnels {
			if err := ctx.Err(); err != nil {
				return err
			}
			log.Info("measuring", "round", round, "tunnel", t.Name(), "load", loadAverage())
			// Process logs go to the lab directory; put it back if
			// something removed it.
			if err := os.MkdirAll(l.Dir, 0o700); err != nil {
				return err
			}
			m, err := measure(ctx, e, t, o)
			if err != nil && ctx.Err() == nil {
				log.Warn("measurement failed; once more", "round", round, "tunnel", t.Name(), "err", err)
				fmt.Fprintf(os.Stderr, "%s\n", l.Dump())
				m, err = measure(ctx, e, t, o)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				first, _, _ := strings.Cut(err.Error(), "\n")
				log.Error("measurement failed twice; going on without it", "round", round, "tunnel", t.Name(), "err", err)
				rs.Failures = append(rs.Failures, fmt.Sprintf("round %d, %s: %s", round, t.Name(), first))
				continue
			}
			m.Round, m.Tunnel = round, t.Name()
			rs.Rows = append(rs.Rows, m)
			log.Info("measured", "round", round, "tunnel", t.Name(), "figures", m.short())
		}
	}
	for _, t := range tunnels {
		if ov, ok := t.(*openVPN); ok {
			rs.Info.OpenVPNCipher = ov.Cipher
		}
	}
	rs.Info.LoadEnd = loadAverage()
	rs.Info.Took = time.Since(started).Round(time.Second)
	rs.Info.Rounds, rs.Info.IperfSeconds = o.rounds, int(o.duration/time.Second)
	tsv, md, err := rs.write(o.out, started)
	if err != nil {
		return err
	}
	fmt.Printf("\n%s\nwrote %s and %s (took %s)\n", rs.markdown(), tsv, md, rs.Info.Took)
	return nil
}

// buildEnv makes cli and srv joined by one veth pair (the only link the
// measured traffic crosses) and idp behind srv for Dex.
func buildEnv(l *lab.Lab, bin binaries) (*env, error) {
	e := &env{lab: l, dir: l.Dir, bin: bin}
	var err error
	for _, n := range []struct {
		p    **lab.Node
		name string
	}{{&e.cli, "cli"}, {&e.srv, "srv"}, {&e.idp, "idp"}} {
		if *n.p, err = l.AddNode(n.name); err != nil {
			return nil, err
		}
	}
	link, err := l.Connect(lab.End{Node: e.cli, Addrs: []string{cliVeth4 + "/24"}}, lab.End{Node: e.srv, Addrs: []string{srvVeth4 + "/24"}})
	if err != nil {
		return nil, err
	}
	e.cliVethName = link.A.Name
	if _, err := l.Connect(lab.End{Node: e.srv, Addrs: []string{lab.GWIDPIP4 + "/24"}}, lab.End{Node: e.idp, Addrs: []string{lab.IDPIP4 + "/24"}}); err != nil {
		return nil, err
	}
	// Silent token refresh from cli reaches Dex through srv.
	if err := e.cli.Route(lab.IDPN4, srvVeth4); err != nil {
		return nil, err
	}
	if err := e.idp.Route("default", lab.GWIDPIP4); err != nil {
		return nil, err
	}
	if err := e.srv.Forwarding(true); err != nil {
		return nil, err
	}
	return e, nil
}

func makeTunnels(ctx context.Context, e *env, d *dex.Server, o options) ([]tunnel, error) {
	want := func(name string) bool {
		if o.only == "" {
			return o.ablation || !slices.ContainsFunc(ablations, func(a ablation) bool { return a.key == name })
		}
		for _, s := range strings.Split(o.only, ",") {
			if strings.TrimSpace(s) == name {
				return true
			}
		}
		return false
	}
	var ts []tunnel
	if want("bare") {
		ts = append(ts, &bare{e: e})
	}
	if want("ours") {
		t, err := newOurs(ctx, e, d, oursLabel, "0", nil)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	if want("wg") {
		t, err := newWgGo(e)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	if want("openvpn") {
		t, err := newOpenVPN(ctx, e)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	// Ablation: the same ClearPath with its tuning switched off, so the
	// table shows what each change bought in the same run.
	for _, v := range ablations {
		if want(v.key) {
			t, err := newOurs(ctx, e, d, v.label, v.slot, v.env)
			if err != nil {
				return nil, err
			}
			t.serviceAgent = v.key == "service"
			ts = append(ts, t)
		}
	}
	for i, v := range o.variants {
		label, envs, _ := strings.Cut(v, ":")
		t, err := newOurs(ctx, e, d, oursLabel+", "+label, fmt.Sprint(len(ablations)+1+i), strings.Split(envs, ","))
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// ablations switch ClearPath's tuning off step by step (internal/wgdev and
// the agent's runtime settings read these variables).
type ablation struct {
	key, label, slot string
	env              []string
}

var ablations = []ablation{
	{"stock", "ClearPath, untuned", "1", []string{"CLEARPATH_WG_INFLIGHT=0", "CLEARPATH_MEMORY_LIMIT=off"}},
	{"nomemlimit", "ClearPath, no memory limit", "2", []string{"CLEARPATH_MEMORY_LIMIT=off"}},
	{"gwlimit", "ClearPath, GOMEMLIMIT=64MiB on both ends", "3", []string{"GOMEMLIMIT=64MiB"}},
	// Not tuning but deployment: the agent already running (a system
	// service), so `vpn up` does not start it.
	{"service", "ClearPath, agent already running", "4", nil},
}

// measurement is one tunnel in one round.
type measurement struct {
	Round  int
	Tunnel string
	Values map[string]float64
	Load   string
}

func (m measurement) short() string {
	var b strings.Builder
	for _, k := range metricOrder {
		if v, ok := m.Values[k.key]; ok {
			fmt.Fprintf(&b, "%s=%.4g ", k.key, v)
		}
	}
	return strings.TrimSpace(b.String())
}

// measure brings t up, measures it and brings it down.
func measure(ctx context.Context, e *env, t tunnel, o options) (m measurement, err error) {
	m.Values = map[string]float64{}
	m.Load = loadAverage()
	if err := t.Start(ctx); err != nil {
		t.Stop(ctx)
		return m, fmt.Errorf("start server end: %w", err)
	}
	defer func() {
		if serr := t.Stop(ctx); serr != nil && err == nil {
			err = serr
		}
	}()
	upCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	setup, err := t.Up(upCtx)
	cancel()
	if err != nil {
		return m, err
	}
	cpid, spid := t.Pids()
	if cpid != 0 {
		m.Values["setup_ms"] = float64(setup.Microseconds()) / 1000
	}
	if o, ok := t.(*ours); ok && o.agentSetup > 0 {
		m.Values["agent_setup_ms"] = o.agentSetup
	}
	avg, max, err := pingStats(ctx, e.cli, clientCPU, t.Target(), 20, 50*time.Millisecond)
	if err != nil {
		return m, err
	}
	m.Values["ping_avg_ms"], m.Values["ping_max_ms"] = avg, max
	if cpid != 0 {
		time.Sleep(500 * time.Millisecond)
		for who, p := range map[string]int{"client": cpid, "server": spid} {
			rss, _, err := memory(p)
			if err != nil {
				return m, err
			}
			m.Values["idle_rss_"+who+"_mib"] = rss
		}
	}
	cpu0, err := cpuOf(cpid, spid)
	if err != nil {
		return m, err
	}
	bytes0, err := linkBytes(ctx, e.cli, t.Device())
	if err != nil {
		return m, err
	}
	// A fresh iperf3 server each time: one that died in an earlier round
	// must not fail the next.
	iperf, err := e.srv.Start("iperf3-server", pinned(serverCPU, "iperf3", "-s", "--forceflush")...)
	if err != nil {
		return m, err
	}
	defer iperf.Stop(time.Second)
	if err := waitLog(ctx, iperf, "Server listening", 5*time.Second); err != nil {
		return m, err
	}
	if os.Getenv("TUNNELBENCH_PAUSE") != "" {
		onFirstFailure = func(out string) {
			capture := fmt.Sprintf("timeout 2 tcpdump -ni any -c 30 'tcp port 5201 or icmp' & sleep 0.3; ip -s link show dev %s; ip route get %s; timeout 1 bash -c 'echo > /dev/tcp/%s/5201'; echo connect rc=$?; ip -s link show dev %s; wait",
				t.Device(), t.Target(), t.Target(), t.Device())
			cli, _ := e.cli.Exec(ctx, "bash", "-c", capture)
			fmt.Fprintf(os.Stderr, "FIRST FAILURE %s\n%s\n--- cli capture:\n%s\n%s\n", time.Now().Format(time.StampMicro), lastLines(out, 5), cli, diagnose(ctx, e, t))
		}
	}
	for _, test := range iperfTests {
		r, err := runIperf(ctx, e.cli, clientCPU, t.Target(), test.streams, test.reverse, o.duration)
		if err != nil {
			err = fmt.Errorf("%s: %w\n%s", test.key, err, diagnose(ctx, e, t))
			if os.Getenv("TUNNELBENCH_PAUSE") != "" {
				fmt.Fprintf(os.Stderr, "paused for inspection (TUNNELBENCH_PAUSE), lab %s: %v\n", e.lab.Prefix, err)
				time.Sleep(3 * time.Minute)
			}
			return m, err
		}
		m.Values[test.key] = r.Mbps
	}
	if cpid != 0 {
		cpu1, err := cpuOf(cpid, spid)
		if err != nil {
			return m, err
		}
		bytes1, err := linkBytes(ctx, e.cli, t.Device())
		if err != nil {
			return m, err
		}
		if gb := (bytes1 - bytes0) / 1e9; gb > 0 {
			m.Values["cpu_s_per_gb"] = (cpu1 - cpu0) / gb
		}
		for who, p := range map[string]int{"client": cpid, "server": spid} {
			_, hwm, err := memory(p)
			if err != nil {
				return m, err
			}
			m.Values["peak_rss_"+who+"_mib"] = hwm
		}
	}
	return m, nil
}

var iperfTests = []struct {
	key     string
	streams int
	reverse bool
}{
	{"tcp1_up_mbps", 1, false},
	{"tcp1_down_mbps", 1, true},
	{"tcp4_up_mbps", 4, false},
	{"tcp4_down_mbps", 4, true},
}

func cpuOf(pids ...int) (float64, error) {
	var sum float64
	for _, p := range pids {
		if p == 0 {
			continue
		}
		s, err := cpuSeconds(p)
		if err != nil {
			return 0, err
		}
		sum += s
	}
	return sum, nil
}

// diagnose collects what explains a failed test: the route to the target,
// the listening sockets on srv, the tunnel interfaces.
func diagnose(ctx context.Context, e *env, t tunnel) string {
	var b strings.Builder
	for _, c := range []struct {
		n    *lab.Node
		argv []string
	}{
		{e.cli, []string{"ip", "route", "get", t.Target()}},
		{e.cli, []string{"ip", "-s", "link", "show", "dev", t.Device()}},
		{e.cli, []string{"ss", "-tan"}},
		{e.srv, []string{"ss", "-tlnp"}},
		{e.srv, []string{"ip", "-br", "addr"}},
		{e.cli, []string{"ip", "rule"}},
		{e.srv, []string{"ip", "rule"}},
	} {
		out, err := c.n.Exec(ctx, c.argv...)
		fmt.Fprintf(&b, "--- %s: %s (%v)\n%s", c.n.Name, strings.Join(c.argv, " "), err, out)
	}
	return b.String()
}
