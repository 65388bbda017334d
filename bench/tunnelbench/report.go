package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// metric is one figure of the tables.
type metric struct {
	key, label string
	format     string
}

var metricOrder = []metric{
	{"tcp1_up_mbps", "TCP 1 stream, client→server (Mbit/s)", "%.0f"},
	{"tcp1_down_mbps", "TCP 1 stream, server→client (Mbit/s)", "%.0f"},
	{"tcp4_up_mbps", "TCP 4 streams, client→server (Mbit/s)", "%.0f"},
	{"tcp4_down_mbps", "TCP 4 streams, server→client (Mbit/s)", "%.0f"},
	{"ping_avg_ms", "ping RTT avg (ms)", "%.3f"},
	{"ping_max_ms", "ping RTT max (ms)", "%.3f"},
	{"setup_ms", "set-up to first reply, user-visible (ms)¹", "%.0f"},
	{"agent_setup_ms", "  of which the agent's work (ms)", "%.0f"},
	{"idle_rss_client_mib", "idle RSS, client end (MiB)", "%.1f"},
	{"idle_rss_server_mib", "idle RSS, server end (MiB)", "%.1f"},
	{"peak1_rss_client_mib", "peak RSS over the 1-stream tests, client end (MiB)", "%.1f"},
	{"peak1_rss_server_mib", "peak RSS over the 1-stream tests, server end (MiB)", "%.1f"},
	{"peak_rss_client_mib", "peak RSS over all four tests, client end (MiB)", "%.1f"},
	{"peak_rss_server_mib", "peak RSS over all four tests, server end (MiB)", "%.1f"},
	{"cpu1_s_per_gb", "CPU s per GB, tunnel processes, 1-stream tests", "%.2f"},
	{"busy1_s_per_gb", "system busy s per GB (/proc/stat), 1-stream tests", "%.2f"},
	{"cpu_s_per_gb", "CPU s per GB, tunnel processes, all four tests", "%.2f"},
	{"busy_s_per_gb", "system busy s per GB (/proc/stat), all four tests", "%.2f"},
}

func metricOf(key string) metric {
	i := slices.IndexFunc(metricOrder, func(m metric) bool { return m.key == key })
	if i < 0 {
		panic("tunnelbench: no metric " + key)
	}
	return metricOrder[i]
}

type runInfo struct {
	CPU, Kernel, Memory, GoVersion string
	LoadStart, LoadEnd             string
	OpenVPNCipher                  string
	Took, Estimate                 time.Duration
	Rounds, IperfSeconds           int
	Order                          string
	Seed                           uint64
	// ClearedEnv are the caller's GO* variables (KEY=value) removed
	// before anything was started.
	ClearedEnv []string
}

type results struct {
	Info     runInfo
	Specs    []rowInfo
	Rows     []measurement
	Failures []string
	// Orders are the row keys of each round in the order they ran.
	Orders [][]string
}

func machineInfo() runInfo {
	info := runInfo{CPU: "?", Kernel: "?", Memory: "?", GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				switch strings.TrimSpace(k) {
				case "model name":
					info.CPU = strings.TrimSpace(v)
				case "processor":
					n++
				}
			}
		}
		info.CPU = fmt.Sprintf("%s, %d cores", info.CPU, n)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(string(b), "MemTotal: %f kB", &kb)
		info.Memory = fmt.Sprintf("%.0f GiB", kb/1024/1024)
	}
	return info
}

// ---- arithmetic ----

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is the median of v with its minimum and maximum.
type spread struct {
	Median, Min, Max float64
	N                int
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	return spread{Median: median(v), Min: slices.Min(v), Max: slices.Max(v), N: len(v)}
}

// values returns the figures of tunnel for key over the rounds.
func (rs *results) values(tunnel, key string) []float64 {
	var v []float64
	for _, r := range rs.Rows {
		if x, ok := r.Values[key]; r.Tunnel == tunnel && ok {
			v = append(v, x)
		}
	}
	return v
}

// roundRatios returns a's figure over b's for key in every round that
// measured both (b's not zero), in round order. A round is one
// measurement of each row, interleaved with the others, so its ratio
// compares the two under the same conditions; the median of these is
// robust where the ratio of two medians taken from different rounds is
// not.
func (rs *results) roundRatios(a, b, key string) []float64 {
	byRound := map[int]float64{}
	for _, r := range rs.Rows {
		if x, ok := r.Values[key]; r.Tunnel == b && ok && x != 0 {
			byRound[r.Round] = x
		}
	}
	var out []float64
	for _, r := range rs.Rows {
		if x, ok := r.Values[key]; r.Tunnel == a && ok {
			if y, ok := byRound[r.Round]; ok {
				out = append(out, x/y)
			}
		}
	}
	return out
}

// ---- cells ----

func (rs *results) cell(tunnel string, m metric) string {
	s := spreadOf(rs.values(tunnel, m.key))
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return fmt.Sprintf(m.format, s.Median)
	}
	return fmt.Sprintf(m.format+" ("+m.format+"–"+m.format+")", s.Median, s.Min, s.Max)
}

func (rs *results) medianCell(tunnel string, m metric) string {
	s := spreadOf(rs.values(tunnel, m.key))
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf(m.format, s.Median)
}

// ratioCell is the median of the per-round ratios of a over b, with
// their min–max.
func (rs *results) ratioCell(a, b, key string) string {
	return formatRatio(spreadOf(rs.roundRatios(a, b, key)))
}

func formatRatio(s spread) string {
	switch s.N {
	case 0:
		return "–"
	case 1:
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// ---- report ----

const (
	refName   = "wireguard-go (reference)"
	ovpnName  = "OpenVPN 2.6"
	bareName  = "bare veth"
	oursLabel = "ClearPath"
)

// measured returns the rows of group that have figures, in spec order.
func (rs *results) measured(groups ...string) []rowInfo {
	var out []rowInfo
	for _, s := range rs.Specs {
		if slices.Contains(groups, s.Group) && slices.ContainsFunc(rs.Rows, func(m measurement) bool { return m.Tunnel == s.Label }) {
			out = append(out, s)
		}
	}
	return out
}

func (rs *results) has(key string) (rowInfo, bool) {
	i := slices.IndexFunc(rs.Specs, func(s rowInfo) bool { return s.Key == key })
	if i < 0 || !slices.ContainsFunc(rs.Rows, func(m measurement) bool { return m.Tunnel == rs.Specs[i].Label }) {
		return rowInfo{}, false
	}
	return rs.Specs[i], true
}

// keysWith are the metrics any of rows has.
func (rs *results) keysWith(rows []rowInfo) []metric {
	var out []metric
	for _, m := range metricOrder {
		for _, r := range rows {
			if len(rs.values(r.Label, m.key)) > 0 {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

type pair struct{ a, b rowInfo }

func (p pair) title() string { return short(p.a) + " ÷ " + short(p.b) }

// short names a row in a ratio column.
func short(r rowInfo) string {
	switch r.Key {
	case keyRef:
		return "wg-go"
	case keyOurs:
		return oursLabel
	case "openvpn":
		return "OpenVPN"
	}
	l := strings.TrimPrefix(r.Label, refName+", ")
	l = strings.TrimPrefix(l, oursLabel+", ")
	if strings.HasPrefix(r.Label, refName) {
		return "wg-go " + l
	}
	return l
}

// markdown renders the whole report.
func (rs *results) markdown() string {
	var b strings.Builder
	in := rs.Info
	fmt.Fprintf(&b, "%d rounds; every row once per round, order %s", in.Rounds, in.Order)
	if in.Order == "shuffle" {
		fmt.Fprintf(&b, " (seed %d: `-seed %d` repeats it)", in.Seed, in.Seed)
	}
	fmt.Fprintf(&b, "; iperf3 %d s per test after 1 s omitted. Cells: median over the rounds (min–max). Ratios: median of the per-round ratios (min–max), each round comparing two rows measured minutes apart under the same conditions. For throughput higher is better, for the rest lower.\n\n", in.IperfSeconds)
	if rs.development() {
		fmt.Fprintf(&b, "**Development run (fewer than %d rounds or tests shorter than %s): not for publishing.**\n\n", defaultRounds, defaultDuration)
	}

	b.WriteString("## For the README\n\n")
	b.WriteString(rs.readmeTable())

	main := rs.measured("main", "fair", "setup", "extra")
	if len(main) > 0 {
		b.WriteString("\n## Figures\n\n")
		cols := []string{"figure"}
		for _, r := range main {
			cols = append(cols, r.Label)
		}
		header(&b, cols)
		for _, m := range rs.keysWith(main) {
			row := []string{m.label}
			for _, r := range main {
				row = append(row, rs.cell(r.Label, m))
			}
			line(&b, row)
		}
	}

	if pairs := rs.refPairs(); len(pairs) > 0 {
		b.WriteString("\n## Ratios to the references\n\n")
		b.WriteString("`wg-go wg-quick policy routing ÷ wg-go` is what the policy rules and the mark cost the reference; `wg-go GOMEMLIMIT=64MiB ÷ wg-go` what the agent's memory limit does to it; `agent as a service ÷ wg-go` compares `vpn up` with the agent already running against the reference's bare set-up.\n\n")
		cols := []string{"figure"}
		var rowsInvolved []rowInfo
		for _, p := range pairs {
			cols = append(cols, p.title())
			rowsInvolved = append(rowsInvolved, p.a)
		}
		header(&b, cols)
		for _, m := range rs.keysWith(rowsInvolved) {
			row := []string{m.label}
			empty := true
			for _, p := range pairs {
				c := rs.ratioCell(p.a.Label, p.b.Label, m.key)
				empty = empty && c == "–"
				row = append(row, c)
			}
			if !empty {
				line(&b, row)
			}
		}
	}

	abl := rs.measured("ablation")
	if ours, ok := rs.has(keyOurs); ok && len(abl) > 0 {
		b.WriteString("\n## Ablation: one suspect switched off at a time\n\n")
		b.WriteString("1 stream both ways and ping only (the 4-stream tests would put the published run past 30 minutes on 2 cores). `ClearPath ÷ row` below 1 for throughput (above 1 for the rest) is what the switched-off thing costs ClearPath.\n\n")
		keys := []string{"tcp1_up_mbps", "tcp1_down_mbps", "ping_avg_ms", "setup_ms", "peak1_rss_client_mib", "peak1_rss_server_mib", "cpu1_s_per_gb", "busy1_s_per_gb"}
		cols := []string{"row"}
		for _, k := range keys {
			cols = append(cols, metricOf(k).label)
		}
		header(&b, cols)
		for _, r := range append([]rowInfo{ours}, abl...) {
			row := []string{r.Label}
			for _, k := range keys {
				row = append(row, rs.cell(r.Label, metricOf(k)))
			}
			line(&b, row)
		}
		b.WriteString("\n")
		cols = []string{"ClearPath ÷ row"}
		for _, k := range keys {
			cols = append(cols, metricOf(k).label)
		}
		header(&b, cols)
		for _, r := range abl {
			row := []string{short(r)}
			for _, k := range keys {
				row = append(row, rs.ratioCell(ours.Label, r.Label, k))
			}
			line(&b, row)
		}
	}

	b.WriteString("\n## Rows\n\n")
	header(&b, []string{"row", "key (-only)", "tests", "set for this row"})
	for _, s := range rs.Specs {
		env := s.Env
		if env == "" {
			env = "–"
		}
		line(&b, []string{s.Label, s.Key, s.Class.String(), env})
	}
	b.WriteString("\n¹ User-visible set-up time; the two sides do different work. ClearPath: the wall time of `vpn up` (login from the cache, registration with the gateway, tunnel, routes, a probe through the tunnel; it exits after a reply came back). The references: from starting the client process to the first ICMP echo reply through the tunnel (probing every 2 ms, as often as `vpn up` first probes), keys and configuration given.\n")
	b.WriteString("\nPer-process CPU is the user+system time of both tunnel processes; system busy time is the whole machine's (/proc/stat: all but idle and iowait) over the same interval, iperf3 and the kernel's packet path included, and other jobs on a shared machine too.\n")

	b.WriteString("\nEnvironment: every process started ran without the caller's GO* variables (")
	if len(in.ClearedEnv) == 0 {
		b.WriteString("none were set")
	} else {
		b.WriteString("cleared: `" + strings.Join(in.ClearedEnv, "`, `") + "`")
	}
	b.WriteString("); a row sets only what the table above says.\n")

	b.WriteString("\nOrder of the rows per round: ")
	for i, keys := range rs.Orders {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d: %s", i+1, strings.Join(keys, " "))
	}
	b.WriteString(".\n")

	if len(rs.Failures) > 0 {
		b.WriteString("\nMeasurements that failed twice and are missing from the figures:\n\n")
		for _, f := range rs.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	fmt.Fprintf(&b, "\nMachine: %s, %s, Linux %s, %s. Load average (1/5/15 min) %s at the start, %s at the end; the run took %s (estimated %s).",
		in.CPU, in.Memory, in.Kernel, in.GoVersion, in.LoadStart, in.LoadEnd, in.Took, in.Estimate.Round(time.Second))
	if in.OpenVPNCipher != "" {
		fmt.Fprintf(&b, " OpenVPN's data channel negotiated %s.", in.OpenVPNCipher)
	}
	b.WriteString("\n")
	return b.String()
}

// development reports whether the run is shorter than the published one.
func (rs *results) development() bool {
	return rs.Info.Rounds < defaultRounds || rs.Info.IperfSeconds < int(defaultDuration/time.Second)
}

// refPairs are the ratio columns: ClearPath over each reference row, the
// fairness rows over the bare reference, the service row over the bare
// reference, and the extra rows.
func (rs *results) refPairs() []pair {
	var out []pair
	ours, okOurs := rs.has(keyOurs)
	ref, okRef := rs.has(keyRef)
	if okOurs {
		for _, r := range rs.measured("main", "fair") {
			if strings.HasPrefix(r.Label, refName) {
				out = append(out, pair{ours, r})
			}
		}
	}
	if okRef {
		for _, r := range rs.measured("fair", "setup") {
			out = append(out, pair{r, ref})
		}
	}
	if ov, ok := rs.has("openvpn"); ok && okOurs {
		out = append(out, pair{ours, ov})
	}
	if ba, ok := rs.has("bare"); ok && okRef {
		out = append(out, pair{ba, ref})
	}
	return out
}

// readmeTable is the table the README's benchmark section copies: the
// figures the targets are about, ClearPath against the bare
// reference, with the fairness references beside it.
func (rs *results) readmeTable() string {
	ours, okOurs := rs.has(keyOurs)
	ref, okRef := rs.has(keyRef)
	if !okOurs || !okRef {
		return "(needs the rows ours and wg)\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`make bench`, %d rounds, %d s tests: medians; ratios are medians of per-round ratios (min–max).\n\n", rs.Info.Rounds, rs.Info.IperfSeconds)
	if rs.development() {
		b.WriteString("**Development run: not for publishing.**\n\n")
	}
	cols := []string{"figure", "ClearPath", "wireguard-go", "ratio"}
	quick, okQuick := rs.has("wgquick")
	mem, okMem := rs.has("wgmemlimit")
	if okQuick {
		cols = append(cols, "ratio to wg-go set up as wg-quick")
	}
	if okMem {
		cols = append(cols, "ratio to wg-go with GOMEMLIMIT=64MiB")
	}
	header(&b, cols)
	row := func(label string, a rowInfo, key string) {
		m := metricOf(key)
		if len(rs.values(a.Label, key)) == 0 {
			return
		}
		r := []string{label, rs.medianCell(a.Label, m), rs.medianCell(ref.Label, m), rs.ratioCell(a.Label, ref.Label, key)}
		if okQuick {
			r = append(r, rs.ratioCell(a.Label, quick.Label, key))
		}
		if okMem {
			r = append(r, rs.ratioCell(a.Label, mem.Label, key))
		}
		line(&b, r)
	}
	row("TCP 1 stream client→server (Mbit/s)", ours, "tcp1_up_mbps")
	row("TCP 1 stream server→client (Mbit/s)", ours, "tcp1_down_mbps")
	row("TCP 4 streams client→server (Mbit/s)", ours, "tcp4_up_mbps")
	row("TCP 4 streams server→client (Mbit/s)", ours, "tcp4_down_mbps")
	row("ping RTT avg (ms)", ours, "ping_avg_ms")
	row("`vpn up` to first reply, starting the agent (ms, user-visible)", ours, "setup_ms")
	if svc, ok := rs.has(keyService); ok {
		row("`vpn up` to first reply, agent as a service (ms, user-visible)", svc, "setup_ms")
	}
	row("peak RSS under one bulk transfer (1 stream), client end (MiB)", ours, "peak1_rss_client_mib")
	row("peak RSS under one bulk transfer (1 stream), gateway end (MiB)", ours, "peak1_rss_server_mib")
	row("peak RSS under load (all four tests), client end (MiB)", ours, "peak_rss_client_mib")
	row("peak RSS under load (all four tests), gateway end (MiB)", ours, "peak_rss_server_mib")
	row("CPU s per GB, tunnel processes", ours, "cpu_s_per_gb")
	row("system busy s per GB (/proc/stat)", ours, "busy_s_per_gb")
	return b.String()
}

func (rs *results) keyOf(label string) string {
	for _, s := range rs.Specs {
		if s.Label == label {
			return s.Key
		}
	}
	return label
}

func header(b *strings.Builder, cols []string) {
	line(b, cols)
	seps := make([]string, len(cols))
	for i := range seps {
		seps[i] = "---"
	}
	line(b, seps)
}

func line(b *strings.Builder, cells []string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

// tsv is every figure of every round, one per line: date, round, the
// row's position in its round, its key, its label, the metric, the value
// and the load average when the row started.
func (rs *results) tsv(stamp string) string {
	var t strings.Builder
	t.WriteString("date\tround\tpos\trow\ttunnel\tmetric\tvalue\tload\n")
	for _, r := range rs.Rows {
		for _, m := range metricOrder {
			if v, ok := r.Values[m.key]; ok {
				fmt.Fprintf(&t, "%s\t%d\t%d\t%s\t%s\t%s\t%g\t%s\n", stamp, r.Round, r.Pos, rs.keyOf(r.Tunnel), r.Tunnel, m.key, v, r.Load)
			}
		}
	}
	return t.String()
}

// write stores <date>-tunnels.tsv (every figure of every round),
// <date>-tunnels.md (the report) and <date>-readme-table.md (the table the
// README copies) in dir, and copies them to latest-*.
func (rs *results) write(dir string, started time.Time) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	stamp := started.UTC().Format("2006-01-02T1504Z")
	when := started.UTC().Format("2006-01-02 15:04 UTC")
	files := []struct{ name, data string }{
		{"tunnels.tsv", rs.tsv(stamp)},
		{"tunnels.md", fmt.Sprintf("# Tunnel benchmark, %s\n\n%s", when, rs.markdown())},
		{"readme-table.md", fmt.Sprintf("Latest `make bench`, %s (%s, load average %s at the start, %s at the end):\n\n%s", when, rs.Info.CPU, rs.Info.LoadStart, rs.Info.LoadEnd, rs.readmeTable())},
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, stamp+"-"+f.name)
		for _, path := range []string{p, filepath.Join(dir, "latest-"+f.name)} {
			if err := os.WriteFile(path, []byte(f.data), 0o644); err != nil {
				return nil, err
			}
		}
		paths = append(paths, p)
	}
	return paths, nil
}
