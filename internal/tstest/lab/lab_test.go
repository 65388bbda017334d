package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func ping(t *testing.T, n *Node, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := n.Ping(ctx, addr); err != nil {
		t.Errorf("%s cannot reach %s: %v", n.Name, addr, err)
	}
}

func noPing(t *testing.T, n *Node, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := n.Ping(ctx, addr); err == nil {
		t.Errorf("%s reaches %s, want unreachable", n.Name, addr)
	}
}

// leftovers lists what the lab with prefix left on the machine: named
// namespaces, links in the machine's own namespace, its owner record.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	var left []string
	nss, _ := filepath.Glob(filepath.Join(netnsDir, prefix+"-*"))
	left = append(left, nss...)
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, prefix) {
			left = append(left, "link: "+line)
		}
	}
	if _, err := os.Stat(ownerPath(prefix)); err == nil {
		left = append(left, ownerPath(prefix))
	}
	return left
}

func TestReferenceTopology(t *testing.T) {
	SkipUnlessRoot(t)
	r, err := NewReference(Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	if got := len(leftovers(t, r.Prefix)); got != 7 { // 6 namespaces + owner record
		t.Errorf("expected 6 namespaces and an owner record, found %v", leftovers(t, r.Prefix))
	}

	ping(t, r.Laptop, HostLANIP4)
	ping(t, r.Laptop, HostLANIP6)
	ping(t, r.Laptop, GWPublicIP4) // through host: host forwards
	ping(t, r.Laptop, GWPublicIP6)
	ping(t, r.VPCA, GWVPCAIP4)
	ping(t, r.VPCA, GWVPCAIP6)
	ping(t, r.VPCB, GWVPCBIP4)
	ping(t, r.VPCB, GWVPCBIP6)
	ping(t, r.IDP, GWIDPIP4)
	ping(t, r.GW, LaptopIP4) // gw routes the LAN back via host
	ping(t, r.GW, LaptopIP6)
	// The VPCs are private: without a tunnel the laptop cannot reach them,
	// and gw does not forward until the gateway asks for it.
	noPing(t, r.Laptop, VPCAIP4)
	noPing(t, r.Laptop, VPCAIP6)
	noPing(t, r.Laptop, IDPIP4)
	if err := r.GW.Forwarding(true); err != nil {
		t.Fatal(err)
	}
	ping(t, r.Laptop, IDPIP4) // the internet knows idp's prefix
	noPing(t, r.Laptop, VPCBIP4)

	// IPv6 addresses are usable at once (no DAD): a TCP connection over
	// IPv6 from gw to vpc-a right after set-up.
	ln, err := r.VPCA.Listen("tcp", "["+VPCAIP6+"]:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	c, err := r.GW.DialContext(context.Background(), "tcp", "["+VPCAIP6+"]:7000")
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if want := "hello " + GWVPCAIP6 + "\n"; line != want {
		t.Errorf("vpc-a said %q, want %q", line, want)
	}

	// Close removes every namespace, link and record, and kills processes.
	p, err := r.VPCB.Start("sleeper", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	dir := r.Dir
	closed = true
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, r.Prefix); len(left) > 0 {
		t.Errorf("left after Close: %v", left)
	}
	if ok, _ := p.Exited(); !ok {
		t.Errorf("process %d still running after Close", p.Pid())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir %s still there: %v", dir, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestExecAndStart(t *testing.T) {
	l := NewT(t, Options{})
	a, err := l.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Exec(context.Background(), "sh", "-c", "echo out; echo err >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "out") || !strings.Contains(err.Error(), "err") {
		t.Errorf("failed command: want error quoting its output, got %v", err)
	}
	if out != "out\nerr\n" {
		t.Errorf("output %q", out)
	}
	if _, err := l.AddNode("a"); err == nil {
		t.Error("duplicate node name accepted")
	}
	if _, err := l.AddNode("much-too-long"); err == nil {
		t.Error("over-long node name accepted")
	}
	p, err := a.Start("echoer", "sh", "-c", "echo started; exec sleep 600")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Log(), "started") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.Log(), "started") {
		t.Errorf("log %s: %q", p.LogPath, p.Log())
	}
	if err := p.Stop(2 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := syscall.Kill(p.Pid(), 0); err == nil {
		t.Errorf("pid %d alive after Stop", p.Pid())
	}
	if !strings.Contains(l.Dump(), "started") {
		t.Error("Dump lacks the process log")
	}
}

// The helper process builds a lab and then waits to be killed or signalled
// by the test that started it.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("LAB_HELPER")
	if mode == "" {
		t.Skip("helper for other tests")
	}
	l, err := New(Options{NoSweep: true})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	a, _ := l.AddNode("a")
	b, _ := l.AddNode("b")
	if _, err := l.Connect(End{Node: a, Addrs: []string{"10.9.0.1/24"}}, End{Node: b, Addrs: []string{"10.9.0.2/24"}}); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	// A detached process, as `vpn up` leaves its agent: it must not die
	// with us, so only the sweeper can end it.
	cmd := exec.Command("ip", "netns", "exec", b.NS, "sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	// READY only once it has entered the namespace: before that it is not
	// in the lab yet.
	for !slices.Contains(namespacePids(b.NS), cmd.Process.Pid) {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("READY %s %d\n", l.Prefix, cmd.Process.Pid)
	time.Sleep(10 * time.Minute)
}

func startHelper(t *testing.T) (cmd *exec.Cmd, prefix string, detached int) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "LAB_HELPER=1")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
			fmt.Sscan(f[2], &detached)
			prefix = f[1]
			break
		}
		t.Log("helper:", sc.Text())
	}
	go io.Copy(io.Discard, stdout)
	if prefix == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper did not build its lab")
	}
	t.Cleanup(func() {
		// Whatever happened, leave nothing behind.
		cmd.Process.Kill()
		syscall.Kill(detached, syscall.SIGKILL)
		Sweep(nil)
	})
	return cmd, prefix, detached
}

// alive reports whether pid runs, allowing a killed process a moment to
// finish exiting.
func alive(pid int) bool {
	for range 20 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(b), ") Z ") {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
	return true
}

func TestSweepRemovesKilledRun(t *testing.T) {
	SkipUnlessRoot(t)
	cmd, prefix, detached := startHelper(t)
	if err := Sweep(nil); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, prefix); len(left) != 3 {
		t.Fatalf("Sweep touched a live run's lab: left %v", left)
	}
	// Hold off other processes' sweepers (parallel test packages) so the
	// leftover is ours to inspect and remove.
	unlock, err := lockSweep()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cmd.Process.Kill() // no cleanup at all, like a test timeout
	cmd.Wait()
	if left := leftovers(t, prefix); len(left) != 3 {
		t.Fatalf("expected the killed run's 2 namespaces and record, got %v", left)
	}
	if !alive(detached) {
		t.Fatal("detached process died with its creator; the test proves nothing")
	}
	if err := sweepLocked(nil); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("left after Sweep: %v", left)
	}
	if alive(detached) {
		t.Errorf("process %d in the leaked namespace survived the sweep", detached)
	}
}

func TestInterruptTearsDown(t *testing.T) {
	SkipUnlessRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, prefix, detached := startHelper(t)
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if want := 128 + int(sig); code != want {
				t.Errorf("helper exit: %v (code %d), want %d", err, code, want)
			}
			if left := leftovers(t, prefix); len(left) > 0 {
				t.Errorf("left after %v: %v", sig, left)
			}
			if alive(detached) {
				t.Errorf("process %d in the lab survived %v", detached, sig)
			}
		})
	}
}
