// Command tunnelbench measures tunnels side by side on this machine:
// ClearPath (`vpn up` against `vpn-gateway serve`), the reference
// wireguard-go (bare, and set up as wg-quick does, and with the agent's
// memory limit), ClearPath with one suspect switched off at a time, and
// optionally the bare veth and OpenVPN 2.6, in rounds whose order is
// shuffled (seeded) per round, in two network namespaces joined by one
// veth pair, each end pinned to its own core. It writes the raw figures
// (TSV) and markdown: medians, and medians of per-round ratios with their
// spread.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
)

type options struct {
	rounds   int
	duration time.Duration
	quick    bool
	order    string
	seed     uint64
	out      string
	bin      binaries
	only     string
	extra    bool
	ablation bool
	variants variantFlag
}

// variantFlag collects -variant "label:KEY=V,KEY2=V" (ClearPath run with
// extra environment, for exploring tuning).
type variantFlag []string

func (v *variantFlag) String() string     { return strings.Join(*v, ";") }
func (v *variantFlag) Set(s string) error { *v = append(*v, s); return nil }

// Published defaults (issue 24: at least 7 rounds of 10 s tests); -quick
// is for development.
const (
	defaultRounds   = 7
	defaultDuration = 10 * time.Second
	quickRounds     = 2
	quickDuration   = 3 * time.Second
)

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", defaultRounds, "rounds; every row once per round, in the order -order gives")
	flag.DurationVar(&o.duration, "t", defaultDuration, "length of each iperf3 test (plus 1 s omitted warm-up)")
	flag.BoolVar(&o.quick, "quick", false, fmt.Sprintf("development run: %d rounds of %s tests unless -rounds or -t say otherwise (not for publishing)", quickRounds, quickDuration))
	flag.StringVar(&o.order, "order", "shuffle", "order of the rows inside each round: shuffle (seeded, per round), rotate (by one per round) or fixed")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of -order shuffle (0: from the clock; the report records it)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the TSV and markdown results")
	flag.StringVar(&o.bin.VPN, "vpn", "bin/vpn", "vpn binary")
	flag.StringVar(&o.bin.Gateway, "gateway", "bin/vpn-gateway", "vpn-gateway binary")
	flag.StringVar(&o.bin.WireGuardGo, "wireguard-go", "bin/wireguard-go", "reference wireguard-go binary")
	flag.StringVar(&o.bin.OpenVPN, "openvpn", "openvpn", "openvpn binary")
	flag.StringVar(&o.only, "only", "", "comma-separated rows to run, of: "+strings.Join(rowKeys(), ",")+" (default: the published set)")
	flag.BoolVar(&o.extra, "extra", false, "also run the bare veth and OpenVPN rows (1 stream, ping)")
	flag.BoolVar(&o.ablation, "ablation", true, "run the ablation rows (ClearPath with one suspect switched off)")
	flag.Var(&o.variants, "variant", `extra ClearPath row "label:KEY=V,KEY2=V" with that environment for agent and gateway (repeatable; 1 stream, ping)`)
	flag.Parse()
	if o.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["rounds"] {
			o.rounds = quickRounds
		}
		if !set["t"] {
			o.duration = quickDuration
		}
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}

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
	if o.rounds < 1 || o.duration < time.Second {
		return fmt.Errorf("-rounds %d -t %s: want at least 1 round of at least 1s", o.rounds, o.duration)
	}
	if _, err := roundOrder(1, 1, o.order, o.seed); err != nil {
		return err
	}
	specs, err := selectRows(o)
	if err != nil {
		return err
	}
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
	// Every process this run starts inherits our environment: the
	// caller's Go runtime settings (GOGC, GOMEMLIMIT, GOMAXPROCS, GODEBUG,
	// ...) must not reach the tunnels. Rows set what they need themselves.
	cleared := clearGoEnv()

	started := time.Now()
	info := machineInfo()
	info.LoadStart = loadAverage()
	info.ClearedEnv = cleared
	info.Order, info.Seed = o.order, o.seed
	est := estimate(specs, o.rounds, o.duration)
	info.Estimate = est
	log.Info("tunnelbench", "rounds", o.rounds, "iperf", o.duration, "rows", len(specs), "order", o.order, "seed", o.seed,
		"machine", info.CPU, "load", info.LoadStart, "cleared_env", strings.Join(cleared, " "))
	fmt.Fprintf(os.Stderr, "tunnelbench: %d rows × %d rounds, %s iperf3 tests: estimated %s (plus the Go benchmarks in make bench)\n",
		len(specs), o.rounds, o.duration, est.Round(time.Minute))

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

	tunnels := make([]tunnel, len(specs))
	for i, s := range specs {
		if tunnels[i], err = s.make(ctx, e, d, strconv.Itoa(i)); err != nil {
			return fmt.Errorf("prepare %s: %w", s.Label, err)
		}
	}
	var rs results
	rs.Info = info
	for _, s := range specs {
		rs.Specs = append(rs.Specs, s.rowInfo)
	}
	for round := 1; round <= o.rounds; round++ {
		order, _ := roundOrder(len(tunnels), round, o.order, o.seed)
		var names []string
		for _, i := range order {
			names = append(names, specs[i].Key)
		}
		log.Info("round", "round", round, "order", strings.Join(names, ","))
		rs.Orders = append(rs.Orders, names)
		for pos, i := range order {
			t, s := tunnels[i], specs[i]
			if err := ctx.Err(); err != nil {
				return err
			}
			log.Info("measuring", "round", round, "pos", pos+1, "tunnel", t.Name(), "load", loadAverage())
			// Process logs go to the lab directory; put it back if
			// something removed it.
			if err := os.MkdirAll(l.Dir, 0o700); err != nil {
				return err
			}
			m, err := measure(ctx, e, t, s.Class, o)
			if err != nil && ctx.Err() == nil {
				log.Warn("measurement failed; once more", "round", round, "tunnel", t.Name(), "err", err)
				fmt.Fprintf(os.Stderr, "%s\n", l.Dump())
				m, err = measure(ctx, e, t, s.Class, o)
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
			m.Round, m.Pos, m.Tunnel = round, pos+1, t.Name()
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
	paths, err := rs.write(o.out, started)
	if err != nil {
		return err
	}
	fmt.Printf("\n%s\nwrote %s (took %s, estimated %s)\n", rs.markdown(), strings.Join(paths, ", "), rs.Info.Took, est.Round(time.Second))
	return nil
}

// clearGoEnv removes every GO* variable from this process's environment
// (so from every process it starts) and returns them as KEY=value, sorted.
func clearGoEnv() []string {
	var cleared []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GO") {
			cleared = append(cleared, kv)
			os.Unsetenv(k)
		}
	}
	slices.Sort(cleared)
	return cleared
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

// testClass says which tests a row gets. The ablation and fairness rows
// get 1 stream both ways and ping only, to keep the published run inside
// about 30 minutes on 2 cores.
type testClass int

const (
	classSetup testClass = iota // set-up, ping, idle RSS
	classLight                  // + TCP 1 stream both ways, peak RSS and CPU over them
	classFull                   // + TCP 4 streams both ways, peak RSS and CPU over all four
)

func (c testClass) String() string {
	return [...]string{"set-up and ping", "1 stream, ping", "1 and 4 streams, ping"}[c]
}

// rowInfo describes a row for the report.
type rowInfo struct {
	Key, Label string
	// Group places the row in the report: "main", "fair" (reference set
	// up like ClearPath in one respect), "setup", "ablation", "extra".
	Group string
	Class testClass
	// Env is what the row sets beyond the cleared environment.
	Env string
}

type rowSpec struct {
	rowInfo
	// published rows run by default; others only when -only names them.
	published bool
	// make prepares the row; slot is short and unique in the run (for
	// interface and directory names).
	make func(ctx context.Context, e *env, d *dex.Server, slot string) (tunnel, error)
}

const (
	keyOurs    = "ours"
	keyRef     = "wg"
	keyService = "service"
)

// rows are every row tunnelbench knows, in report order.
func rows() []rowSpec {
	ours := func(key, label, group string, class testClass, published bool, v oursVariant) rowSpec {
		return rowSpec{rowInfo: rowInfo{Key: key, Label: label, Group: group, Class: class, Env: v.describe()}, published: published,
			make: func(ctx context.Context, e *env, d *dex.Server, slot string) (tunnel, error) {
				return newOurs(ctx, e, d, label, slot, v)
			}}
	}
	wg := func(key, label, group string, class testClass, v wgVariant) rowSpec {
		return rowSpec{rowInfo: rowInfo{Key: key, Label: label, Group: group, Class: class, Env: v.describe()}, published: true,
			make: func(ctx context.Context, e *env, d *dex.Server, slot string) (tunnel, error) {
				return newWgGo(e, slot, label, v)
			}}
	}
	return []rowSpec{
		ours(keyOurs, oursLabel, "main", classFull, true, oursVariant{}),
		wg(keyRef, refName, "main", classFull, wgVariant{}),
		wg("wgquick", refName+", wg-quick policy routing", "fair", classLight, wgVariant{quick: true}),
		wg("wgmemlimit", refName+", GOMEMLIMIT=64MiB", "fair", classLight, wgVariant{clientEnv: []string{"GOMEMLIMIT=64MiB"}}),
		ours(keyService, oursLabel+", agent as a service", "setup", classSetup, true, oursVariant{service: true}),
		ours("norules", oursLabel+", no policy rules", "ablation", classLight, true, oursVariant{noRules: true}),
		ours("nomark", oursLabel+", unmarked socket", "ablation", classLight, true, oursVariant{noMark: true}),
		ours("noipv6", oursLabel+", no IPv6 on the tunnel", "ablation", classLight, true, oursVariant{noIPv6: true}),
		ours("nofilter", oursLabel+", no eBPF filter on the gateway", "ablation", classLight, true, oursVariant{noFilter: true}),
		ours("nomemlimit", oursLabel+", no memory limit", "ablation", classLight, true, oursVariant{clientEnv: []string{"CLEARPATH_MEMORY_LIMIT=off"}}),
		ours("stock", oursLabel+", untuned", "ablation", classLight, false, oursVariant{env: []string{"CLEARPATH_WG_INFLIGHT=0", "CLEARPATH_MEMORY_LIMIT=off"}}),
		ours("gwlimit", oursLabel+", GOMEMLIMIT=64MiB on both ends", "ablation", classLight, false, oursVariant{env: []string{"GOMEMLIMIT=64MiB"}}),
		{rowInfo: rowInfo{Key: "bare", Label: bareName, Group: "extra", Class: classLight},
			make: func(ctx context.Context, e *env, d *dex.Server, _ string) (tunnel, error) { return &bare{e: e}, nil }},
		{rowInfo: rowInfo{Key: "openvpn", Label: ovpnName, Group: "extra", Class: classLight},
			make: func(ctx context.Context, e *env, d *dex.Server, _ string) (tunnel, error) { return newOpenVPN(ctx, e) }},
	}
}

func rowKeys() []string {
	var keys []string
	for _, r := range rows() {
		keys = append(keys, r.Key)
	}
	return keys
}

// selectRows picks the rows of this run: -only, else the published set
// (without the ablation rows under -ablation=false, with the extra rows
// under -extra), then the -variant rows.
func selectRows(o options) ([]rowSpec, error) {
	all := rows()
	var out []rowSpec
	if o.only != "" {
		for _, k := range strings.Split(o.only, ",") {
			k = strings.TrimSpace(k)
			i := slices.IndexFunc(all, func(r rowSpec) bool { return r.Key == k })
			if i < 0 {
				return nil, fmt.Errorf("-only: no row %q (rows: %s)", k, strings.Join(rowKeys(), ","))
			}
			if !slices.ContainsFunc(out, func(r rowSpec) bool { return r.Key == k }) {
				out = append(out, all[i])
			}
		}
	} else {
		for _, r := range all {
			switch {
			case r.Group == "extra":
				if o.extra {
					out = append(out, r)
				}
			case !r.published:
			case r.Group == "ablation" && !o.ablation:
			default:
				out = append(out, r)
			}
		}
	}
	for i, v := range o.variants {
		label, envs, ok := strings.Cut(v, ":")
		if !ok || label == "" || envs == "" {
			return nil, fmt.Errorf("-variant %q: want \"label:KEY=V,KEY2=V\"", v)
		}
		kv := strings.Split(envs, ",")
		for _, x := range kv {
			if k, _, ok := strings.Cut(x, "="); !ok || k == "" {
				return nil, fmt.Errorf("-variant %q: %q is not KEY=V", v, x)
			}
		}
		vv := oursVariant{env: kv}
		key, full := fmt.Sprintf("v%d", i+1), oursLabel+", "+label
		out = append(out, rowSpec{rowInfo: rowInfo{Key: key, Label: full, Group: "ablation", Class: classLight, Env: vv.describe()},
			make: func(ctx context.Context, e *env, d *dex.Server, slot string) (tunnel, error) {
				return newOurs(ctx, e, d, full, slot, vv)
			}})
	}
	if len(out) == 0 {
		return nil, errors.New("no rows to run")
	}
	return out, nil
}

// measurement is one tunnel in one round.
type measurement struct {
	Round int
	// Pos is the row's place in its round (1 = first).
	Pos    int
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

// sample is what the CPU and memory counters say at one moment.
type sample struct {
	cpu   float64 // user+system seconds of both tunnel processes
	busy  float64 // busy seconds of the whole machine (/proc/stat)
	bytes float64 // bytes through the client's tunnel interface
}

func takeSample(ctx context.Context, e *env, t tunnel) (sample, error) {
	var s sample
	var err error
	cpid, spid := t.Pids()
	if s.cpu, err = cpuOf(cpid, spid); err != nil {
		return s, err
	}
	if s.busy, err = systemBusy(); err != nil {
		return s, err
	}
	s.bytes, err = linkBytes(ctx, e.cli, t.Device())
	return s, err
}

// perGB stores the CPU and system busy time between a and b per GB moved
// under keys cpu<suffix>_s_per_gb and busy<suffix>_s_per_gb.
func (m measurement) perGB(a, b sample, procs bool, suffix string) {
	gb := (b.bytes - a.bytes) / 1e9
	if gb <= 0 {
		return
	}
	if procs {
		m.Values["cpu"+suffix+"_s_per_gb"] = (b.cpu - a.cpu) / gb
	}
	m.Values["busy"+suffix+"_s_per_gb"] = (b.busy - a.busy) / gb
}

func (m measurement) peakRSS(t tunnel, prefix string) error {
	cpid, spid := t.Pids()
	if cpid == 0 {
		return nil
	}
	for who, p := range map[string]int{"client": cpid, "server": spid} {
		_, hwm, err := memory(p)
		if err != nil {
			return err
		}
		m.Values[prefix+"_rss_"+who+"_mib"] = hwm
	}
	return nil
}

// measure brings t up, runs the tests of class and brings it down.
func measure(ctx context.Context, e *env, t tunnel, class testClass, o options) (m measurement, err error) {
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
	if class == classSetup {
		return m, nil
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
	s0, err := takeSample(ctx, e, t)
	if err != nil {
		return m, err
	}
	for _, test := range iperfTests {
		if test.streams > 1 && class != classFull {
			break
		}
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
		if test.key == "tcp1_down_mbps" {
			// The 1-stream tests are over: every row has them.
			s1, err := takeSample(ctx, e, t)
			if err != nil {
				return m, err
			}
			m.perGB(s0, s1, cpid != 0, "1")
			if err := m.peakRSS(t, "peak1"); err != nil {
				return m, err
			}
		}
	}
	if class == classFull {
		s2, err := takeSample(ctx, e, t)
		if err != nil {
			return m, err
		}
		m.perGB(s0, s2, cpid != 0, "")
		if err := m.peakRSS(t, "peak"); err != nil {
			return m, err
		}
	}
	return m, nil
}

// iperfTests run in this order: the 1-stream ones first (every row with
// iperf3 gets them), then the 4-stream ones (classFull only).
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
