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

// metric is one figure of the table; better says which way is good.
type metric struct {
	key, label     string
	higherIsBetter bool
	format         string
}

var metricOrder = []metric{
	{"tcp1_up_mbps", "TCP 1 stream, client→server (Mbit/s)", true, "%.0f"},
	{"tcp1_down_mbps", "TCP 1 stream, server→client (Mbit/s)", true, "%.0f"},
	{"tcp4_up_mbps", "TCP 4 streams, client→server (Mbit/s)", true, "%.0f"},
	{"tcp4_down_mbps", "TCP 4 streams, server→client (Mbit/s)", true, "%.0f"},
	{"ping_avg_ms", "ping RTT avg (ms)", false, "%.3f"},
	{"ping_max_ms", "ping RTT max (ms)", false, "%.3f"},
	{"setup_ms", "set-up to first reply (ms)", false, "%.0f"},
	{"agent_setup_ms", "  of which the agent's work (ms)", false, "%.0f"},
	{"idle_rss_client_mib", "idle RSS, client end (MiB)", false, "%.1f"},
	{"idle_rss_server_mib", "idle RSS, server end (MiB)", false, "%.1f"},
	{"peak_rss_client_mib", "peak RSS under load, client end (MiB)", false, "%.1f"},
	{"peak_rss_server_mib", "peak RSS under load, server end (MiB)", false, "%.1f"},
	{"cpu_s_per_gb", "CPU s per GB moved (both ends)", false, "%.2f"},
}

type runInfo struct {
	CPU, Kernel, Memory, GoVersion string
	LoadStart, LoadEnd             string
	OpenVPNCipher                  string
	Took                           time.Duration
	Rounds, IperfSeconds           int
}

type results struct {
	Info     runInfo
	Rows     []measurement
	Failures []string
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

// tunnels returns the tunnel names in the order they were measured.
func (rs *results) tunnels() []string {
	var names []string
	for _, r := range rs.Rows {
		if !slices.Contains(names, r.Tunnel) {
			names = append(names, r.Tunnel)
		}
	}
	return names
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

func (rs *results) cell(tunnel string, m metric) string {
	v := rs.values(tunnel, m.key)
	if len(v) == 0 {
		return "–"
	}
	return fmt.Sprintf(m.format+" ("+m.format+"–"+m.format+")", median(v), slices.Min(v), slices.Max(v))
}

func (rs *results) ratio(a, b string, m metric) string {
	x, y := median(rs.values(a, m.key)), median(rs.values(b, m.key))
	if math.IsNaN(x) || math.IsNaN(y) || y == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", x/y)
}

const (
	refName  = "wireguard-go (reference)"
	ovpnName = "OpenVPN 2.6"
)

// markdown renders the table of medians (min–max over the rounds), the
// ratios to the reference wireguard-go and to OpenVPN, and the ablation.
func (rs *results) markdown() string {
	var b strings.Builder
	names := rs.tunnels()
	var main, abl []string
	for _, n := range names {
		if strings.HasPrefix(n, oursLabel+",") {
			abl = append(abl, n)
		} else {
			main = append(main, n)
		}
	}
	fmt.Fprintf(&b, "Medians of %d interleaved rounds, (min–max); iperf3 %d s per test after 1 s omitted.\n\n", rs.Info.Rounds, rs.Info.IperfSeconds)
	header(&b, append([]string{"figure"}, main...))
	for _, m := range metricOrder {
		row := []string{m.label}
		for _, n := range main {
			row = append(row, rs.cell(n, m))
		}
		line(&b, row)
	}
	b.WriteString("\nRatios of medians (for throughput higher is better, for the rest lower is better):\n\n")
	type pair struct{ a, b string }
	var pairs []pair
	for _, n := range main {
		if n != refName {
			pairs = append(pairs, pair{n, refName})
		}
	}
	for _, n := range main {
		if n != ovpnName && n != refName {
			pairs = append(pairs, pair{n, ovpnName})
		}
	}
	cols := []string{"figure"}
	for _, p := range pairs {
		cols = append(cols, short(p.a)+" ÷ "+short(p.b))
	}
	header(&b, cols)
	for _, m := range metricOrder {
		row := []string{m.label}
		for _, p := range pairs {
			row = append(row, rs.ratio(p.a, p.b, m))
		}
		line(&b, row)
	}
	if len(abl) > 0 {
		b.WriteString("\nWhat the tuning bought, and `vpn up` with the agent already running (same run; ratio = ClearPath ÷ this row):\n\n")
		keys := []string{"tcp1_up_mbps", "tcp1_down_mbps", "tcp4_up_mbps", "tcp4_down_mbps", "peak_rss_client_mib", "peak_rss_server_mib", "cpu_s_per_gb", "setup_ms"}
		cols := []string{"variant"}
		var ms []metric
		for _, k := range keys {
			for _, m := range metricOrder {
				if m.key == k {
					ms = append(ms, m)
					cols = append(cols, m.label)
				}
			}
		}
		header(&b, cols)
		for _, n := range append([]string{oursLabel}, abl...) {
			row := []string{n}
			for _, m := range ms {
				c := rs.cell(n, m)
				if n != oursLabel {
					c += " · " + rs.ratio(oursLabel, n, m)
				}
				row = append(row, c)
			}
			line(&b, row)
		}
	}
	if len(rs.Failures) > 0 {
		b.WriteString("\nMeasurements that failed twice and are missing from the figures:\n\n")
		for _, f := range rs.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	fmt.Fprintf(&b, "\nMachine: %s, %s, Linux %s, %s. Load average (1/5/15 min) %s at the start, %s at the end; the run took %s.",
		rs.Info.CPU, rs.Info.Memory, rs.Info.Kernel, rs.Info.GoVersion, rs.Info.LoadStart, rs.Info.LoadEnd, rs.Info.Took)
	if rs.Info.OpenVPNCipher != "" {
		fmt.Fprintf(&b, " OpenVPN's data channel negotiated %s.", rs.Info.OpenVPNCipher)
	}
	b.WriteString("\n")
	return b.String()
}

func short(name string) string {
	switch name {
	case refName:
		return "wg-go"
	case ovpnName:
		return "OpenVPN"
	}
	return name
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

// write stores <date>-tunnels.tsv (every figure of every round) and
// <date>-tunnels.md in dir, and copies them to latest-tunnels.*.
func (rs *results) write(dir string, started time.Time) (tsvPath, mdPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	stamp := started.UTC().Format("2006-01-02T1504Z")
	var t strings.Builder
	t.WriteString("date\tround\ttunnel\tmetric\tvalue\tload\n")
	for _, r := range rs.Rows {
		for _, m := range metricOrder {
			if v, ok := r.Values[m.key]; ok {
				fmt.Fprintf(&t, "%s\t%d\t%s\t%s\t%g\t%s\n", stamp, r.Round, r.Tunnel, m.key, v, r.Load)
			}
		}
	}
	md := fmt.Sprintf("# Tunnel benchmark, %s\n\n%s", started.UTC().Format("2006-01-02 15:04 UTC"), rs.markdown())
	tsvPath = filepath.Join(dir, stamp+"-tunnels.tsv")
	mdPath = filepath.Join(dir, stamp+"-tunnels.md")
	for path, data := range map[string]string{
		tsvPath: t.String(), mdPath: md,
		filepath.Join(dir, "latest-tunnels.tsv"): t.String(), filepath.Join(dir, "latest-tunnels.md"): md,
	} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			return "", "", err
		}
	}
	return tsvPath, mdPath, nil
}
