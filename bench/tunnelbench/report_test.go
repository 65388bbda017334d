package main

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedianAndSpread(t *testing.T) {
	for _, c := range []struct {
		in         []float64
		med, lo, h float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		in := slices.Clone(c.in)
		s := spreadOf(in)
		if s.Median != c.med || s.Min != c.lo || s.Max != c.h || s.N != len(c.in) {
			t.Errorf("spreadOf(%v) = %+v, want median %g min %g max %g", c.in, s, c.med, c.lo, c.h)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("spreadOf sorted its input: %v", in)
		}
	}
	if s := spreadOf(nil); !math.IsNaN(s.Median) || s.N != 0 || formatRatio(s) != "–" {
		t.Errorf("spreadOf(nil) = %+v, %q; want NaN, 0, –", s, formatRatio(s))
	}
}

// results of two rows over rounds: a[i], b[i] are round i+1's figures
// (NaN: not measured that round).
func twoRows(key string, a, b []float64) *results {
	rs := &results{Specs: []rowInfo{{Key: keyOurs, Label: oursLabel, Group: "main"}, {Key: keyRef, Label: refName, Group: "main"}}}
	add := func(name string, v []float64) {
		for i, x := range v {
			if !math.IsNaN(x) {
				rs.Rows = append(rs.Rows, measurement{Round: i + 1, Tunnel: name, Values: map[string]float64{key: x}})
			}
		}
	}
	add(oursLabel, a)
	add(refName, b)
	rs.Info.Rounds = len(a)
	return rs
}

func TestRoundRatiosAreMedianOfPerRoundRatios(t *testing.T) {
	// Per-round ratios 0.5, 2, 3.33: median 2. The ratio of the medians
	// would say 1 (2 over 2): the figure the issue calls fragile.
	rs := twoRows("tcp1_up_mbps", []float64{1, 2, 10}, []float64{2, 1, 3})
	got := rs.roundRatios(oursLabel, refName, "tcp1_up_mbps")
	want := []float64{0.5, 2, 10.0 / 3}
	if len(got) != len(want) {
		t.Fatalf("roundRatios = %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Fatalf("roundRatios = %v, want %v", got, want)
		}
	}
	if c := rs.ratioCell(oursLabel, refName, "tcp1_up_mbps"); c != "2.00 (0.50–3.33)" {
		t.Errorf("ratioCell = %q, want 2.00 (0.50–3.33)", c)
	}
	if r := median(rs.values(oursLabel, "tcp1_up_mbps")) / median(rs.values(refName, "tcp1_up_mbps")); r != 1 {
		t.Fatalf("test data: ratio of medians %g, want 1 (different from the median of ratios)", r)
	}
}

func TestRoundRatiosPairOnlyRoundsWithBoth(t *testing.T) {
	nan := math.NaN()
	// Round 2: ClearPath failed; round 3: the reference failed; round 4:
	// the reference measured 0 (no ratio). Only rounds 1 and 5 pair.
	rs := twoRows("ping_avg_ms", []float64{1, nan, 3, 4, 6}, []float64{2, 5, nan, 0, 3})
	got := rs.roundRatios(oursLabel, refName, "ping_avg_ms")
	if !slices.Equal(got, []float64{0.5, 2}) {
		t.Fatalf("roundRatios = %v, want [0.5 2] (rounds 1 and 5)", got)
	}
	if c := rs.ratioCell(oursLabel, refName, "setup_ms"); c != "–" {
		t.Errorf("ratio of an unmeasured metric = %q, want –", c)
	}
}

func TestRoundOrder(t *testing.T) {
	const n = 5
	isPerm := func(o []int) bool {
		s := slices.Clone(o)
		slices.Sort(s)
		for i := range s {
			if s[i] != i {
				return false
			}
		}
		return len(s) == n
	}
	// rotate: over n rounds every row is at every position once.
	seen := map[[2]int]bool{}
	for round := 1; round <= n; round++ {
		o, err := roundOrder(n, round, "rotate", 0)
		if err != nil || !isPerm(o) {
			t.Fatalf("rotate round %d: %v, %v", round, o, err)
		}
		for pos, row := range o {
			seen[[2]int{pos, row}] = true
		}
	}
	if len(seen) != n*n {
		t.Errorf("rotate: %d of %d (position, row) pairs over %d rounds", len(seen), n*n, n)
	}
	if o, _ := roundOrder(n, 1, "rotate", 0); !slices.Equal(o, []int{0, 1, 2, 3, 4}) {
		t.Errorf("rotate round 1 = %v, want the listed order", o)
	}
	if o, _ := roundOrder(n, 3, "fixed", 0); !slices.Equal(o, []int{0, 1, 2, 3, 4}) {
		t.Errorf("fixed = %v", o)
	}
	// shuffle: a permutation, the same for the same seed and round, and
	// not the same order every round.
	firsts := map[int]bool{}
	var orders [][]int
	for round := 1; round <= 20; round++ {
		o, err := roundOrder(n, round, "shuffle", 42)
		if err != nil || !isPerm(o) {
			t.Fatalf("shuffle round %d: %v, %v", round, o, err)
		}
		again, _ := roundOrder(n, round, "shuffle", 42)
		if !slices.Equal(o, again) {
			t.Fatalf("shuffle round %d not repeatable: %v then %v", round, o, again)
		}
		firsts[o[0]] = true
		orders = append(orders, o)
	}
	if len(firsts) < 3 {
		t.Errorf("shuffle over 20 rounds put only rows %v first", firsts)
	}
	other, _ := roundOrder(n, 1, "shuffle", 43)
	differs := !slices.Equal(other, orders[0])
	for round := 2; round <= 5 && !differs; round++ {
		a, _ := roundOrder(n, round, "shuffle", 42)
		b, _ := roundOrder(n, round, "shuffle", 43)
		differs = !slices.Equal(a, b)
	}
	if !differs {
		t.Error("seeds 42 and 43 gave the same orders")
	}
	if _, err := roundOrder(n, 1, "random", 0); err == nil || !strings.Contains(err.Error(), "shuffle, rotate or fixed") {
		t.Errorf("bad mode: err %v, want one naming the modes", err)
	}
}

func TestParseBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	got, err := parseBusy("cpu  100 5 50 1000 70 3 7 2 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if err != nil {
		t.Fatal(err)
	}
	// 100+5+50+3+7+2 ticks, idle and iowait (and guest, inside user) out.
	if want := 167.0 / clockTicks; math.Abs(got-want) > 1e-9 {
		t.Errorf("parseBusy = %g, want %g", got, want)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := parseBusy(bad); err == nil {
			t.Errorf("parseBusy(%q): no error", bad)
		}
	}
	if b, err := systemBusy(); err != nil || b <= 0 {
		t.Errorf("systemBusy() = %g, %v", b, err)
	}
}

func TestSelectRowsAndEstimate(t *testing.T) {
	keys := func(rs []rowSpec) []string {
		var k []string
		for _, r := range rs {
			k = append(k, r.Key)
		}
		return k
	}
	def, err := selectRows(options{ablation: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ours", "wg", "wgquick", "wgmemlimit", "service", "norules", "nomark", "noipv6", "nofilter", "nomemlimit"}
	if !slices.Equal(keys(def), want) {
		t.Errorf("published rows = %v, want %v", keys(def), want)
	}
	for _, r := range def {
		if r.Group == "ablation" && r.Class != classLight {
			t.Errorf("ablation row %s runs %s: the budget allows 1 stream and ping", r.Key, r.Class)
		}
	}
	// The published run fits the budget: 7 rounds of 10 s tests in about
	// 35 minutes (the Go benchmarks, 1-2 minutes, come on top).
	if est := estimate(def, defaultRounds, defaultDuration); est > 36*time.Minute || est < 20*time.Minute {
		t.Errorf("estimate of the published run = %s, want about 35 minutes", est)
	}
	if est := estimate(def, quickRounds, quickDuration); est > 6*time.Minute {
		t.Errorf("estimate of -quick = %s, want a few minutes", est)
	}

	if r, _ := selectRows(options{ablation: false, extra: true}); slices.Contains(keys(r), "norules") || !slices.Contains(keys(r), "openvpn") || !slices.Contains(keys(r), "bare") {
		t.Errorf("-ablation=false -extra: %v", keys(r))
	}
	if r, err := selectRows(options{only: "wg, ours,wg", variants: variantFlag{"gc:GOGC=400"}}); err != nil || !slices.Equal(keys(r), []string{"wg", "ours", "v1"}) || r[2].Env != "both ends: GOGC=400" {
		t.Errorf("-only wg,ours,wg -variant: %v %v", keys(r), err)
	}
	if _, err := selectRows(options{only: "ours,wireguard"}); err == nil || !strings.Contains(err.Error(), `"wireguard"`) {
		t.Errorf("-only with an unknown row: err %v, want one naming it", err)
	}
	if _, err := selectRows(options{only: "ours", variants: variantFlag{"nolabel"}}); err == nil {
		t.Error("-variant without KEY=V: no error")
	}
}

func TestClearGoEnv(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOGC", "off")
	t.Setenv("CLEARPATH_KEEP", "1")
	cleared := clearGoEnv()
	for _, kv := range []string{"GOGC=off", "GOMEMLIMIT=1GiB"} {
		if !slices.Contains(cleared, kv) {
			t.Errorf("cleared %v, want %s among them", cleared, kv)
		}
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GO") {
			t.Errorf("%s still set", kv)
		}
	}
	if os.Getenv("CLEARPATH_KEEP") != "1" {
		t.Error("a non-GO variable was cleared")
	}
}

// TestReportSections renders a small run and checks the tables the issue
// asks for are there with the figures they should hold.
func TestReportSections(t *testing.T) {
	specs, err := selectRows(options{ablation: true})
	if err != nil {
		t.Fatal(err)
	}
	rs := &results{Info: runInfo{Rounds: 2, IperfSeconds: 3, Order: "shuffle", Seed: 7, ClearedEnv: []string{"GOGC=50"}}}
	for _, s := range specs {
		rs.Specs = append(rs.Specs, s.rowInfo)
	}
	rs.Orders = [][]string{{"wg", "ours"}, {"ours", "wg"}}
	put := func(round, pos int, label string, v map[string]float64) {
		rs.Rows = append(rs.Rows, measurement{Round: round, Pos: pos, Tunnel: label, Values: v})
	}
	put(1, 1, refName, map[string]float64{"tcp1_up_mbps": 100, "setup_ms": 20, "peak_rss_server_mib": 300})
	put(1, 2, oursLabel, map[string]float64{"tcp1_up_mbps": 90, "setup_ms": 30, "peak_rss_server_mib": 60})
	put(2, 1, oursLabel, map[string]float64{"tcp1_up_mbps": 110, "setup_ms": 30, "peak_rss_server_mib": 60})
	put(2, 2, refName, map[string]float64{"tcp1_up_mbps": 100, "setup_ms": 20, "peak_rss_server_mib": 300})
	put(1, 3, oursLabel+", no policy rules", map[string]float64{"tcp1_up_mbps": 100})
	put(2, 3, oursLabel+", no policy rules", map[string]float64{"tcp1_up_mbps": 100})
	put(1, 4, oursLabel+", agent as a service", map[string]float64{"setup_ms": 10})
	put(2, 4, oursLabel+", agent as a service", map[string]float64{"setup_ms": 30})
	md := rs.markdown()
	for _, want := range []string{
		"Development run",
		"## For the README",
		"| TCP 1 stream client→server (Mbit/s) | 100 | 100 | 1.00 (0.90–1.10) |",
		"| `vpn up` to first reply, starting the agent (ms, user-visible) | 30 | 20 | 1.50 (1.50–1.50) |",
		"| `vpn up` to first reply, agent as a service (ms, user-visible) | 20 | 20 | 1.00 (0.50–1.50) |",
		"| peak RSS under load (all four tests), gateway end (MiB) | 60.0 | 300.0 | 0.20 (0.20–0.20) |",
		"## Ablation",
		"| no policy rules | 1.00 (0.90–1.10) |",
		"cleared: `GOGC=50`",
		"client: CLEARPATH_BENCH_NO_RULES=1",
		"Order of the rows per round: 1: wg ours; 2: ours wg.",
		"user-visible",
		"(seed 7: `-seed 7` repeats it)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if rt := rs.readmeTable(); !strings.Contains(rt, "Development run: not for publishing") {
		t.Errorf("README table of a 2-round run does not say it is a development run:\n%s", rt)
	}
	rs.Info.Rounds, rs.Info.IperfSeconds = 7, 10
	if rt := rs.readmeTable(); strings.Contains(rt, "Development run") {
		t.Errorf("README table of a 7-round 10 s run calls itself a development run:\n%s", rt)
	}
	tsv := rs.tsv("2026-12-06T2200Z")
	if !strings.HasPrefix(tsv, "date\tround\tpos\trow\ttunnel\tmetric\tvalue\tload\n") ||
		!strings.Contains(tsv, "2026-12-06T2200Z\t2\t1\tours\tClearPath\ttcp1_up_mbps\t110\t") {
		t.Errorf("TSV:\n%s", tsv)
	}
}
