package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// pinned prefixes argv with taskset so the program (and what it starts)
// runs on cpu only.
func pinned(cpu int, argv ...string) []string {
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

// onFirstFailure, when set, runs at once when an iperf3 run fails, before
// the retries (TUNNELBENCH_PAUSE debugging).
var onFirstFailure func(out string)

// iperfResult is one iperf3 run.
type iperfResult struct {
	Mbps float64 // at the receiver, omitted warm-up excluded
}

// runIperf runs an iperf3 TCP test from node (pinned to cpu) to the iperf3
// server at dst: streams parallel streams, reverse for server-to-client.
// iperf3's server closes its listener for a moment between tests (and says
// "busy" while it resets), so a refused or busy start is tried again.
func runIperf(ctx context.Context, node *lab.Node, cpu int, dst string, streams int, reverse bool, dur time.Duration) (iperfResult, error) {
	secs := int(dur.Round(time.Second) / time.Second)
	args := []string{"iperf3", "-c", dst, "-t", strconv.Itoa(secs), "-O", "1", "-P", strconv.Itoa(streams), "-J", "--connect-timeout", "3000"}
	if reverse {
		args = append(args, "-R")
	}
	ctx, cancel := context.WithTimeout(ctx, dur+60*time.Second)
	defer cancel()
	var err error
	for try := 0; ; try++ {
		var r iperfResult
		var out string
		r, out, err = iperfOnce(ctx, node, pinned(cpu, args...))
		if err == nil {
			return r, nil
		}
		if try == 0 && onFirstFailure != nil {
			onFirstFailure(out)
		}
		if try >= 8 || ctx.Err() != nil {
			return iperfResult{}, fmt.Errorf("iperf3 to %s (%d tries): %w", dst, try+1, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func iperfOnce(ctx context.Context, node *lab.Node, argv []string) (iperfResult, string, error) {
	out, err := node.Exec(ctx, argv...)
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal([]byte(out), &doc); jerr != nil {
		if err == nil {
			err = jerr
		}
		return iperfResult{}, out, fmt.Errorf("%w\n%s", err, lastLines(out, 10))
	}
	if doc.Error != "" {
		return iperfResult{}, out, errors.New(doc.Error)
	}
	if err != nil {
		return iperfResult{}, out, err
	}
	if doc.End.SumReceived.BitsPerSecond <= 0 {
		return iperfResult{}, out, errors.New("no throughput in the report")
	}
	return iperfResult{Mbps: doc.End.SumReceived.BitsPerSecond / 1e6}, out, nil
}

// pingStats runs count pings from node to dst at interval and returns the
// average and maximum round trip in milliseconds (iputils ping's summary).
func pingStats(ctx context.Context, node *lab.Node, cpu int, dst string, count int, interval time.Duration) (avg, max float64, err error) {
	out, err := node.Exec(ctx, pinned(cpu, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", dst)...)
	if err != nil {
		return 0, 0, fmt.Errorf("ping %s: %w", dst, err)
	}
	// rtt min/avg/max/mdev = 0.045/0.061/0.108/0.012 ms
	for _, line := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(line, " = "); ok && strings.Contains(line, "min/avg/max") {
			f := strings.Split(strings.Fields(v)[0], "/")
			if len(f) >= 3 {
				avg, _ = strconv.ParseFloat(f[1], 64)
				max, _ = strconv.ParseFloat(f[2], 64)
				return avg, max, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("ping %s: no summary in output:\n%s", dst, out)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds returns the user+system CPU time pid has used, all threads.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// The command name is in parentheses and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of %d: cannot parse %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// Fields after the name start at field 3 (state); utime is 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short stat line", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// memory returns pid's resident set now and its peak (VmRSS, VmHWM), in MiB.
func memory(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			hwm = kb / 1024
		}
	}
	return rss, hwm, nil
}

// linkBytes returns the bytes received plus sent on dev in node: what the
// tunnel carried (inner packets).
func linkBytes(ctx context.Context, node *lab.Node, dev string) (float64, error) {
	out, err := node.Exec(ctx, "ip", "-s", "-j", "link", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	var links []struct {
		Stats struct {
			RX struct {
				Bytes float64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes float64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("link statistics of %s: %v\n%s", dev, err, out)
	}
	return links[0].Stats.RX.Bytes + links[0].Stats.TX.Bytes, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loadAverage is the first field of /proc/loadavg (other helpers share the
// machine; the report says how busy it was).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// systemBusy returns the seconds every CPU of the machine has spent busy
// (the first line of /proc/stat: all but idle and iowait), whoever the
// work was for: the tunnels, iperf3, the kernel's packet path, and other
// jobs on a shared machine.
func systemBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("system busy time: %w", err)
	}
	return parseBusy(string(b))
}

func parseBusy(stat string) (float64, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("system busy time: unexpected /proc/stat line %q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is counted in user already.
	var busy float64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue // idle, iowait
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("system busy time: field %d of %q: %w", i+2, line, err)
		}
		busy += x
	}
	return busy / clockTicks, nil
}
