package routes

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Addresses go through the engine: added (IPv6 without DAD), journaled,
// removed on End.
func TestAddressChangesThroughEngine(t *testing.T) {
	sys, ns := testNS(t)
	before, _ := sys.Snapshot()
	e := NewOwnerEngine(sys, t.TempDir(), GatewayOwner)
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"100.64.0.1/24", "fd00:64::1/64"} {
		if err := e.Apply(Change{Op: OpAddAddr, Addr: &Address{Device: "peer0", Prefix: netip.MustParsePrefix(p), NoDAD: true}}); err != nil {
			t.Fatal(err)
		}
	}
	out := ipIn(t, ns, "addr", "show", "dev", "peer0")
	if !strings.Contains(out, "100.64.0.1/24") || !strings.Contains(out, "fd00:64::1/64") || strings.Contains(out, "tentative") {
		t.Fatalf("addresses missing or tentative:\n%s", out)
	}
	if rep, err := e.End(); err != nil || hasFailure(rep) {
		t.Fatalf("end: %+v %v", rep, err)
	}
	out = ipIn(t, ns, "addr", "show", "dev", "peer0")
	if strings.Contains(out, "100.64.0.1") || strings.Contains(out, "fd00:64::1/") {
		t.Fatalf("addresses left after End:\n%s", out)
	}
	after, _ := sys.Snapshot()
	if d := Compare(before, after); !d.Empty() {
		t.Fatalf("differs: %+v", d)
	}
}

// ip_forward is turned on through the journal by a process that is then
// killed (-9); a second process's Recover puts the original 0 back. Both
// run inside the test namespace (/proc/sys/net is the caller's).
func TestSysctlRestoredAfterKill(t *testing.T) {
	_, ns := testNS(t)
	dir := t.TempDir()
	read := func() string {
		out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward").CombinedOutput()
		if err != nil {
			t.Fatalf("%v %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// A new namespace may inherit the host's value: start from 0.
	if out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil || read() != "0" {
		t.Fatalf("set ip_forward 0 in %s: %v %s", ns, err, out)
	}
	run := func(mode string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestSysctlHelper$")
		cmd.Env = append(os.Environ(), "CP_SYSCTL_DIR="+dir, "CP_SYSCTL_MODE="+mode)
		out, _ := cmd.CombinedOutput()
		t.Logf("%s: %s", mode, out)
		return cmd
	}
	cmd := run("set-and-die")
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatal("helper was not killed")
	}
	if read() != "1" {
		t.Fatal("the helper did not turn forwarding on: the test tests nothing")
	}
	if cmd := run("recover"); !cmd.ProcessState.Success() {
		t.Fatal("recover failed")
	}
	if got := read(); got != "0" {
		t.Fatalf("ip_forward after recovery %s, want the original 0", got)
	}
}

func TestSysctlHelper(t *testing.T) {
	dir := os.Getenv("CP_SYSCTL_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	sys, err := NewSystem()
	if err != nil {
		t.Fatal(err)
	}
	e := NewOwnerEngine(sys, dir, GatewayOwner)
	if os.Getenv("CP_SYSCTL_MODE") == "recover" {
		rep, err := e.Recover()
		if err != nil || hasFailure(rep) {
			t.Fatalf("%+v %v", rep, err)
		}
		return
	}
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetSysctl("net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
