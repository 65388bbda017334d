package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmHWM reads a process's peak resident set size (VmHWM) in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestGatewayBulkPeakRSS runs the gateway (Serve, in its own namespace)
// with one client and pushes iperf3 bulk TCP through it, client to vpc host
// and back, then reports the gateway process's peak RSS (VmHWM). The
// target is 64 MiB (issue 24); the test fails above a generous 96 MiB.
// CPGW_BULK_ENV ("K=V,K2=V2") runs the gateway with that environment, for
// comparing settings (e.g. CLEARPATH_WG_INFLIGHT=0).
func TestGatewayBulkPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s of bulk transfer (not with -short)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("needs iperf3")
	}
	l := newGWLab(t)
	l.clientPeer()
	if e := os.Getenv("CPGW_BULK_ENV"); e != "" { // the gateway's only
		for _, kv := range strings.Split(e, ",") {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
	}
	if !l.start(0, l.cfgPath) {
		_, log := l.wait()
		t.Fatalf("gateway did not start:\n%s", log)
	}
	defer func() {
		log := l.stop()
		if strings.Contains(os.Getenv("CPGW_BULK_ENV"), "gctrace") {
			var gcs []string
			for _, ln := range strings.Split(log, "\n") {
				if strings.HasPrefix(ln, "gc ") {
					gcs = append(gcs, ln)
				}
			}
			t.Logf("%d collections; the last ones:\n%s", len(gcs), strings.Join(gcs[max(0, len(gcs)-400):], "\n"))
		}
	}()
	if took, ok := l.waitTraffic(30 * time.Second); !ok {
		t.Fatalf("no traffic through the tunnel after %v", took)
	}
	pid := l.proc.Process.Pid
	idle := vmHWM(t, pid)
	srv := exec.Command("ip", "netns", "exec", l.vpc, "iperf3", "-s", "-p", "5201")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	for _, dir := range []string{"", "-R"} {
		args := []string{"netns", "exec", l.cl, "iperf3", "-c", "10.10.0.5", "-p", "5201", "-t", "10", "-f", "m"}
		if dir != "" {
			args = append(args, dir)
		}
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("iperf3 %s: %v\n%s", dir, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, ln := range lines {
			if strings.Contains(ln, "receiver") {
				t.Logf("iperf3 %s: %s", dir, strings.Join(strings.Fields(ln), " "))
			}
		}
	}
	peak := vmHWM(t, pid)
	t.Logf("gateway VmHWM: %.1f MiB before the transfers, %.1f MiB peak (env %q)", float64(idle)/(1<<20), float64(peak)/(1<<20), os.Getenv("CPGW_BULK_ENV"))
	if peak > 96<<20 {
		t.Errorf("gateway peak RSS %.1f MiB under one bulk transfer, want <= 64 MiB (fails above 96)", float64(peak)/(1<<20))
	}
}
