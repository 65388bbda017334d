package bpf

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/clearpath-vpn/clearpath/bpf/internal/tunnellab"
)

// iperf3 runs iperf3 from the client to the VPC's allowed address for
// secs seconds (extra: "-u", "-b", "0", "-l", "64" for small UDP packets)
// and returns what the receiver got, in bit/s.
func iperf3(b *testing.B, tl *tunnellab.Lab, secs int, extra ...string) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+20)*time.Second)
	defer cancel()
	args := append([]string{"iperf3", "-c", tunnellab.AllowedDst4, "-t", fmt.Sprint(secs), "-J"}, extra...)
	out, err := tl.Client.Exec(ctx, args...)
	if err != nil {
		b.Fatalf("iperf3: %v\n%s", err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			Sum struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				LostPercent   float64 `json:"lost_percent"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		b.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	if r.End.SumReceived.BitsPerSecond > 0 {
		return r.End.SumReceived.BitsPerSecond
	}
	// UDP: "sum" is the receiver's view, loss included.
	return r.End.Sum.BitsPerSecond * (1 - r.End.Sum.LostPercent/100)
}

// BenchmarkTunnelOverhead measures what the filter costs a real tunnel:
// iperf3 through wireguard-go into the VPC with and without the program on
// the gateway's interface, alternating, in the same run, for bulk TCP and
// for 64-byte UDP packets (per-packet cost dominates there). Reported:
// Mbit/s without and with and the median with/without ratio over the pairs
// (1 means free); and the CPU time the gateway's wireguard-go process (on
// whose threads the kernel runs the receive path and the program) spent
// per MB delivered, which a shared machine's load disturbs less than
// throughput.
//
//	go test -run '^$' -bench TunnelOverhead -benchtime 1x ./bpf/
func BenchmarkTunnelOverhead(b *testing.B) {
	tl := tunnellab.New(b)
	srv, err := tl.VPC.Start("iperf3-server", "iperf3", "-s", "-B", tunnellab.AllowedDst4)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop(3 * time.Second)
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := tl.Client.DialContext(context.Background(), "tcp", tunnellab.AllowedDst4+":5201")
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("iperf3 server does not answer: %v\n%s", err, srv.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	f := loadT(b, Options{})
	if err := f.SetPolicy(1, mustPrefixes("10.10.1.0/24")); err != nil {
		b.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr(tunnellab.ClientAddr4), 7, 1); err != nil {
		b.Fatal(err)
	}
	attached := false
	set := func(on bool) {
		if on == attached {
			return
		}
		var err error
		if on {
			err = tl.GW.Do(func() error { return f.Attach(tl.GWIface) })
		} else {
			err = f.Detach(tl.GWIface)
		}
		if err != nil {
			b.Fatal(err)
		}
		attached = on
	}
	// Short runs, alternating with and without, and the median of each
	// pair's ratio: the machine is shared, and a pair sees the same load.
	const secs, pairs = 2, 6
	for _, mode := range []struct {
		name  string
		extra []string
	}{
		{"tcp", nil},
		{"udp64", []string{"-u", "-b", "0", "-l", "64"}},
	} {
		var without, with float64
		var ratios, cpuRatios []float64
		var cpuWithout, cpuWith float64
		for i := range pairs {
			var bps, cpu [2]float64 // without, with
			for _, on := range []bool{i%2 == 1, i%2 == 0} {
				set(on)
				before, err := tunnellab.CPUTime(tl.GWWireGuard)
				if err != nil {
					b.Fatal(err)
				}
				v := iperf3(b, tl, secs, mode.extra...)
				after, err := tunnellab.CPUTime(tl.GWWireGuard)
				if err != nil {
					b.Fatal(err)
				}
				// Gateway CPU per MB delivered.
				perMB := float64(after-before) / (v * secs / 8 / 1e6)
				k := 0
				if on {
					k = 1
				}
				bps[k], cpu[k] = v, perMB
			}
			without += bps[0] / pairs
			with += bps[1] / pairs
			cpuWithout += cpu[0] / pairs
			cpuWith += cpu[1] / pairs
			ratios = append(ratios, bps[1]/bps[0])
			cpuRatios = append(cpuRatios, cpu[1]/cpu[0])
		}
		c, err := f.Counters()
		if err != nil {
			b.Fatal(err)
		}
		if c.Allowed.Packets == 0 {
			b.Fatal("the program saw no packets while attached")
		}
		slices.Sort(ratios)
		slices.Sort(cpuRatios)
		median, cpuMedian := ratios[len(ratios)/2], cpuRatios[len(cpuRatios)/2]
		b.ReportMetric(without/1e6, mode.name+"-Mbit/s-without")
		b.ReportMetric(with/1e6, mode.name+"-Mbit/s-with")
		b.ReportMetric(median, mode.name+"-ratio")
		b.ReportMetric(cpuWithout/1e3, mode.name+"-gw-us/MB-without")
		b.ReportMetric(cpuWith/1e3, mode.name+"-gw-us/MB-with")
		b.ReportMetric(cpuMedian, mode.name+"-gw-cpu-ratio")
		b.Logf("%s: without %.0f Mbit/s, with %.0f Mbit/s (means of %d runs of %d s); median ratio with/without %.3f, pairs %.3f",
			mode.name, without/1e6, with/1e6, pairs, secs, median, ratios)
		b.Logf("%s: gateway wireguard-go CPU per MB: without %.0f us, with %.0f us; median ratio %.3f, pairs %.3f",
			mode.name, cpuWithout/1e3, cpuWith/1e3, cpuMedian, cpuRatios)
	}
	set(false)
}

// BenchmarkProgram is the program's own cost per packet (BPF_PROG_TEST_RUN
// in the kernel, an allowed TCP packet of an existing flow), without the
// tunnel around it.
func BenchmarkProgram(b *testing.B) {
	f := loadT(b, Options{l3Offset: 14})
	if err := f.SetPolicy(1, mustPrefixes("10.10.1.0/24", "10.20.0.0/16", "fd10::/64")); err != nil {
		b.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr("10.100.0.2"), 7, 1); err != nil {
		b.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr("fd00::2"), 7, 1); err != nil {
		b.Fatal(err)
	}
	// A port-limited policy whose 16th range is the one that matches: the
	// worst case of the range scan.
	var ranges []PortRange
	for i := range MaxPortRanges {
		ranges = append(ranges, PortRange{ProtoTCP, uint16(1000 + 10*i), uint16(1000 + 10*i)})
	}
	if err := f.SetPolicyRules(2, []Allow{{Prefix: netip.MustParsePrefix("10.10.9.9/32"), Ports: ranges}}); err != nil {
		b.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr("10.100.0.3"), 8, 2); err != nil {
		b.Fatal(err)
	}
	frame := ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.5", 6, tcp(40000, 443, 12, 1300), nil, 0))
	// The cost of a test run itself: a program that only returns.
	empty, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	b.Run("empty-program", func(b *testing.B) {
		_, per, err := empty.Benchmark(frame, b.N, b.ResetTimer)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
	})
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"allowed", frame},
		{"denied", ether(ethIPv4, ipv4("10.100.0.2", "10.30.1.5", 6, tcp(40000, 443, 12, 1300), nil, 0))},
		{"allowed-by-16th-port-range", ether(ethIPv4, ipv4("10.100.0.3", "10.10.9.9", 6, tcp(40000, 1150, 12, 1300), nil, 0))},
		{"denied-after-16-port-ranges", ether(ethIPv4, ipv4("10.100.0.3", "10.10.9.9", 6, tcp(40000, 22, 12, 1300), nil, 0))},
		{"unknown-source", ether(ethIPv4, ipv4("10.100.0.9", "10.10.1.5", 6, tcp(40000, 443, 12, 1300), nil, 0))},
		// Four destination-options headers before TCP: the header walk.
		{"ipv6-4-ext-headers", ether(ethIPv6, ipv6("fd00::2", "fd10::5", 6, tcp(40000, 443, 12, 1300),
			[]byte{60, 0, 1, 4, 0, 0, 0, 0}, []byte{60, 0, 1, 4, 0, 0, 0, 0}, []byte{60, 0, 1, 4, 0, 0, 0, 0}, []byte{60, 0, 1, 4, 0, 0, 0, 0}))},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, per, err := f.objs.FlowsIngress.Benchmark(c.frame, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}
