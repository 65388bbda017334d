package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/clearpath-vpn/clearpath/internal/memlimit"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// gwLab is a gateway host in its own network namespace (gw: eth0
// 192.0.2.1/24 towards the client namespace cl, vpc0 10.10.0.1/24 towards
// vpc with a host at 10.10.0.5), with a gateway process started by
// re-executing this test binary (TestGatewayHelper) inside it, so the
// test can kill it with -9 at any hook point and start it again.
type gwLab struct {
	t           *testing.T
	gw, cl, vpc string
	h           *netlink.Handle
	dir         string // state_dir
	cfgPath     string
	iface       string
	trace       string
	proc        *exec.Cmd
	out         *bytes.Buffer
	flows       string // flows.filter: off unless a test sets it
}

var labSeq, helperSeq atomic.Int32

func ipx(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newGWLab(t *testing.T) *gwLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and runs a gateway in one")
	}
	n := labSeq.Add(1)
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, n)
	l := &gwLab{t: t, gw: "cpgw" + id, cl: "cpcl" + id, vpc: "cpvp" + id, iface: "gw" + id, flows: "off"}
	for _, ns := range []string{l.gw, l.cl, l.vpc} {
		exec.Command("ip", "netns", "del", ns).Run()
		ipx(t, "netns", "add", ns)
		ns := ns
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ipx(t, "-n", ns, "link", "set", "lo", "up")
	}
	ipx(t, "-n", l.gw, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", l.cl)
	ipx(t, "-n", l.gw, "link", "add", "vpc0", "type", "veth", "peer", "name", "eth0", "netns", l.vpc)
	for _, c := range [][]string{
		{l.gw, "addr", "add", "192.0.2.1/24", "dev", "eth0"}, {l.gw, "link", "set", "eth0", "up"},
		{l.gw, "addr", "add", "10.10.0.1/24", "dev", "vpc0"}, {l.gw, "link", "set", "vpc0", "up"},
		{l.cl, "addr", "add", "192.0.2.2/24", "dev", "eth0"}, {l.cl, "link", "set", "eth0", "up"},
		{l.vpc, "addr", "add", "10.10.0.5/24", "dev", "eth0"}, {l.vpc, "link", "set", "eth0", "up"},
		{l.vpc, "route", "add", "default", "via", "10.10.0.1"},
	} {
		ipx(t, append([]string{"-n", c[0]}, c[1:]...)...)
	}
	l.exec("sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv6/conf/all/forwarding")
	// The kernel adds the links' IPv6 link-local local routes a moment
	// after they come up; a snapshot taken before would see them as a change.
	for i := 0; i < 500; i++ {
		out, _ := exec.Command("ip", "-n", l.gw, "-6", "route", "show", "table", "local").CombinedOutput()
		if strings.Count(string(out), "local fe80::") >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	h, err := netns.GetFromName(l.gw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if l.h, err = netlink.NewHandleAt(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.h.Close)
	dir, err := os.MkdirTemp("", "cpgw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l.dir = filepath.Join(dir, "state")
	os.Mkdir(l.dir, 0o700)
	l.cfgPath = filepath.Join(dir, "gateway.yaml")
	l.trace = filepath.Join(dir, "trace")
	l.writeConfig(l.config(l.dir, "127.0.0.1:18080", labNet{iface: l.iface, port: 51820, table: 1000, allow: "10.10.0.0/16"}))
	t.Cleanup(l.killIfRunning)
	return l
}

type labNet struct {
	iface, allow string
	port, table  int
}

// config is a gateway configuration for the lab: the OIDC issuer is never
// reached (discovery runs in the background), flows and metrics are off.
func (l *gwLab) config(stateDir, listen string, nets ...labNet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nendpoint: 192.0.2.1\noidc:\n  issuer: https://id.invalid/realm\n  client_id: clearpath\n", listen)
	fmt.Fprintf(&b, "store: %s/gateway.db\nstate_dir: %s\nkey_ttl: 720h\nmetrics_listen: \"off\"\nflows: {filter: \"%s\"}\nnetworks:\n", stateDir, stateDir, l.flows)
	for i, n := range nets {
		fmt.Fprintf(&b, "  - name: n%d\n    group: g%d\n    interface: %s\n    listen_port: %d\n    pool: [100.64.%d.0/24, \"fd00:64:%d::/64\"]\n    allow: [%s]\n    table: %d\n",
			i, i, n.iface, n.port, i, i, n.allow, n.table)
	}
	return b.String()
}

func (l *gwLab) writeConfig(doc string) {
	l.t.Helper()
	if err := os.WriteFile(l.cfgPath, []byte(doc), 0o600); err != nil {
		l.t.Fatal(err)
	}
}

func (l *gwLab) exec(argv ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.gw}, argv...)...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%v in %s: %v\n%s", argv, l.gw, err, out)
	}
	return string(out)
}

// state is what must be exactly as before the first start after a stop:
// every route and rule (all tables, both families), the addresses, the
// forwarding switches and the nftables tables of the gateway namespace.
type hostState struct {
	snap     *routes.Snapshot
	sysctls  string
	nft      string
	rendered string
}

func (l *gwLab) state() hostState {
	l.t.Helper()
	sys := routes.NewSystemAt(l.h)
	snap, err := sys.Snapshot()
	if err != nil {
		l.t.Fatal(err)
	}
	var addrs []string
	for _, a := range snap.Addresses {
		addrs = append(addrs, a.Device+" "+a.Prefix.String())
	}
	slices.Sort(addrs)
	s := hostState{snap: snap,
		sysctls: l.exec("sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding"),
		nft:     l.exec("nft", "list", "tables")}
	s.rendered = "addresses: " + strings.Join(addrs, ", ") + "\nsysctls: " + strings.Join(strings.Fields(s.sysctls), " ") + "\nnft: " + strings.TrimSpace(s.nft)
	return s
}

// same fails the test unless now equals before.
func (l *gwLab) same(what string, before, now hostState) {
	l.t.Helper()
	if d := routes.Compare(before.snap, now.snap); !d.Empty() {
		l.t.Fatalf("%s: routes or rules differ: %+v\nrules now:\n%s", what, d, l.exec("ip", "rule"))
	}
	if before.rendered != now.rendered {
		l.t.Fatalf("%s: host differs\n--- before\n%s\n--- now\n%s", what, before.rendered, now.rendered)
	}
}

// start runs the gateway (killAt > 0: it kills itself at that hook point)
// and waits until it serves, exits or dies.
func (l *gwLab) start(killAt int, cfgPath string) (served bool) {
	l.t.Helper()
	os.Remove(l.trace)
	args := []string{"netns", "exec", l.gw, os.Args[0], "-test.run=^TestGatewayHelper$", "-test.v"}
	if dir := os.Getenv("CPGW_HELPER_COVERDIR"); dir != "" && testing.CoverMode() != "" {
		// Coverage of the gateway processes (those that exit cleanly
		// write it), to merge with the test's own.
		args = append(args, "-test.coverprofile="+filepath.Join(dir, fmt.Sprintf("helper-%d-%d.out", os.Getpid(), helperSeq.Add(1))))
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), "CPGW_CONFIG="+cfgPath, "CPGW_TRACE="+l.trace, "CPGW_KILL="+strconv.Itoa(killAt))
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	l.proc, l.out = cmd, out
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-done:
			return false
		case <-deadline:
			l.t.Fatalf("gateway neither served nor exited in 30 s:\n%s", out)
		case <-time.After(20 * time.Millisecond):
			if b, _ := os.ReadFile(l.trace); bytes.Contains(b, []byte(" start:serving\n")) {
				return true
			}
		}
	}
}

// wait waits for the gateway process to end and returns how it ended.
func (l *gwLab) wait() (killed bool, log string) {
	l.t.Helper()
	if l.proc == nil {
		return false, ""
	}
	for l.proc.ProcessState == nil {
		time.Sleep(10 * time.Millisecond)
	}
	ws, _ := l.proc.ProcessState.Sys().(syscall.WaitStatus)
	log = l.out.String()
	l.proc = nil
	return ws.Signaled() && ws.Signal() == syscall.SIGKILL, log
}

func (l *gwLab) signal(sig syscall.Signal) {
	l.t.Helper()
	if l.proc != nil && l.proc.Process != nil {
		l.proc.Process.Signal(sig)
	}
}

// stop stops the gateway cleanly (SIGTERM) and returns its log.
func (l *gwLab) stop() string {
	l.t.Helper()
	l.signal(syscall.SIGTERM)
	killed, log := l.wait()
	if killed {
		l.t.Fatalf("gateway killed instead of stopping:\n%s", log)
	}
	return log
}

func (l *gwLab) killIfRunning() {
	if l.proc != nil && l.proc.Process != nil {
		l.proc.Process.Kill()
		l.wait()
	}
}

// traceLines returns the hook points the last run reached.
func (l *gwLab) traceLines() []string {
	b, _ := os.ReadFile(l.trace)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestGatewayHelper is the gateway process of gwLab: it runs Serve with the
// configuration CPGW_CONFIG, appends every hook point to CPGW_TRACE, kills
// itself (-9) at hook point CPGW_KILL, reloads on SIGHUP and stops on
// SIGTERM.
func TestGatewayHelper(t *testing.T) {
	path := os.Getenv("CPGW_CONFIG")
	if path == "" {
		t.Skip("helper process only")
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CPGW_CHECK") != "" { // what `vpn-gateway check` runs
		read, err := CheckTables(cfg)
		fmt.Printf("CHECK read=%v err=%v\n", read, err)
		return
	}
	killAt, _ := strconv.Atoi(os.Getenv("CPGW_KILL"))
	trace, err := os.OpenFile(os.Getenv("CPGW_TRACE"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	point := func(p string) {
		n++
		fmt.Fprintf(trace, "%d %s\n", n, p)
		if n == killAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	hooks := &TestHooks{Step: point, Routes: routes.Hooks{
		AfterIntent: func(c routes.Change) { point("intent " + c.String()) },
		AfterApply:  func(c routes.Change) { point("apply " + c.String()) },
		AfterUndo:   func(c routes.Change) { point("undo " + c.String()) },
	}}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			reload <- struct{}{}
		}
	}()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	memlimit.Follow(ctx, log) // as vpn-gateway serve does
	err = Serve(ctx, Options{Config: cfg, ConfigPath: path, Log: log, Reload: reload, Hooks: hooks})
	point("exit")
	if err != nil {
		fmt.Fprintln(os.Stderr, "SERVE ERROR:", err)
		os.Exit(3)
	}
}

// check runs CheckTables (vpn-gateway check) inside the gateway namespace.
func (l *gwLab) check() string {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.gw, os.Args[0], "-test.run=^TestGatewayHelper$")
	cmd.Env = append(os.Environ(), "CPGW_CONFIG="+l.cfgPath, "CPGW_CHECK=1")
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// ping sends one ICMP echo from the client namespace to the vpc host
// through the client's tunnel (see clientPeer).
func (l *gwLab) ping(dst string) bool {
	return exec.Command("ip", "netns", "exec", l.cl, "ping", "-c", "1", "-W", "1", dst).Run() == nil
}
