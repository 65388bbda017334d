package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
)

// The helper is this test binary run as nobody (setpriv): it asks the
// agent of $LOCAL_HELPER_DIR and prints how the failure is classified.
const helperEnv = "CLEARPATH_LOCAL_HELPER"

func init() {
	op := os.Getenv(helperEnv)
	if op == "" {
		return
	}
	c := New(os.Getenv("CLEARPATH_LOCAL_HELPER_DIR"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	switch op {
	case "status":
		_, err = c.Status(ctx)
	case "ensure":
		err = c.Ensure(ctx)
	case "fake-ready":
		// Write READY=1 into the starting agent's readiness pipe, as
		// its descriptor in /proc names it.
		var f *os.File
		if f, err = os.OpenFile("/proc/"+os.Getenv("CLEARPATH_LOCAL_HELPER_PID")+"/fd/3", os.O_WRONLY, 0); err == nil {
			_, err = f.WriteString(readyLine + "\n")
			f.Close()
		}
	}
	fmt.Printf("CLASS=%s ERR=%v\n", class(err), err)
	os.Exit(0)
}

// class names the class of err as the CLI and the tray branch on it.
func class(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrStartNeedsRoot):
		return "needs-root"
	case errors.Is(err, control.ErrNoAccess):
		return "no-access"
	case errors.Is(err, control.ErrNoAgent):
		return "no-agent"
	case errors.Is(err, control.ErrTransient):
		return "transient"
	}
	return "other"
}

// rig is a state dir nobody may traverse (so the socket's own mode and
// the agent's policy decide), the real vpn binary run in a namespace of
// the test's, and a copy of this test binary nobody can run.
type rig struct {
	ns       *netnstest.NS
	dir, vpn string
	helper   string
}

var (
	vpnOnce sync.Once
	vpnBin  string
	vpnErr  error
)

func newRig(t *testing.T) *rig {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	ns := netnstest.New(t) // skips when not root
	if os.Getenv("CLEARPATH_SOCKET") != "" {
		t.Skip("CLEARPATH_SOCKET is set: the agents would share it")
	}
	top, err := os.MkdirTemp("", "cp-local-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	vpnOnce.Do(func() {
		bin, err := os.MkdirTemp("", "cp-local-vpn-")
		if err != nil {
			vpnErr = err
			return
		}
		vpnBin = filepath.Join(bin, "vpn")
		cmd := exec.Command("go", "build", "-o", vpnBin, "./cmd/vpn")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			vpnErr = fmt.Errorf("go build ./cmd/vpn: %v\n%s", err, out)
		}
	})
	if vpnErr != nil {
		t.Fatal(vpnErr)
	}
	r := &rig{ns: ns, dir: filepath.Join(top, "state")}
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Every agent runs inside the namespace, as if this machine were it.
	r.vpn = filepath.Join(top, "vpn-in-ns")
	script := "#!/bin/sh\nexec ip netns exec " + ns.Name + " " + vpnBin + " \"$@\"\n"
	if err := os.WriteFile(r.vpn, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	r.helper = filepath.Join(top, "local.test")
	if err := os.WriteFile(r.helper, data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *rig) client() *Client {
	c := New(r.dir)
	c.VPN = r.vpn
	return c
}

// stop ends the agent, if one runs, and waits until it is gone.
func (r *rig) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := r.client()
	if _, err := c.Down(ctx); err == nil && !c.WaitGone(ctx) {
		t.Errorf("the agent still answers after down")
	}
}

// asNobody runs the helper as uid 65534 with no groups.
func (r *rig) asNobody(t *testing.T, op string, env ...string) string {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--", r.helper, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+op, "CLEARPATH_LOCAL_HELPER_DIR="+r.dir), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *rig) agentLog() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "agent.log"))
	return string(b)
}

// Ensure starts the real agent (vpn agent, in the namespace) when none
// runs and returns once it answers; a second Ensure finds it.
func TestEnsureStartsTheAgent(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := r.client()
	if _, err := c.Status(ctx); !errors.Is(err, control.ErrNoAgent) {
		t.Fatalf("before: %v, want ErrNoAgent", err)
	}
	start := time.Now()
	if err := c.Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v\nagent.log:\n%s", err, r.agentLog())
	}
	t.Logf("ensure with no agent: answering after %s", time.Since(start).Round(time.Millisecond))
	st, err := c.Status(ctx)
	if err != nil || st.State != control.StateDown || st.AgentPID == 0 {
		t.Fatalf("status after ensure: %+v, %v", st, err)
	}
	if err := c.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Status(ctx); again == nil || again.AgentPID != st.AgentPID {
		t.Fatalf("a second ensure started another agent: pid %d then %+v", st.AgentPID, again)
	}
	if _, err := c.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.WaitGone(ctx) {
		t.Fatal("the agent still answers after down")
	}
}

// The lock race: an agent that has just answered a down still holds the
// state dir's lock while it tears down, and an agent started then exits at
// once. Start right after each down (without waiting for the old one to
// go) must end with an agent answering every time; and two starts at the
// same moment (the CLI and the tray) both succeed with one agent.
func TestStartRidesOutTheLockRace(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := r.client()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start: %v\n%s", err, r.agentLog())
	}
	var took []time.Duration
	for i := 0; i < 5; i++ {
		if _, err := c.Down(ctx); err != nil {
			t.Fatalf("round %d: down: %v\n%s", i, err, r.agentLog())
		}
		start := time.Now()
		if err := c.Start(ctx); err != nil {
			t.Fatalf("round %d: start right after down: %v\nagent.log:\n%s", i, err, r.agentLog())
		}
		took = append(took, time.Since(start))
		if _, err := c.Status(ctx); err != nil {
			t.Fatalf("round %d: status after start: %v", i, err)
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("start right after down: median %s, max %s", took[len(took)/2], took[len(took)-1])

	// The race made certain: the lock held (as by an agent tearing down)
	// until an agent Start started has exited on it. Start starts another
	// and ends with it answering.
	r.stop(t)
	unlock, err := agent.Lock(r.dir, 5*time.Second) // the last agent may still exit
	if err != nil {
		t.Fatal(err)
	}
	exitsBefore := strings.Count(r.agentLog(), "an agent is running")
	exits := func() int { return strings.Count(r.agentLog(), "an agent is running") - exitsBefore }
	go func() {
		defer unlock()
		for deadline := time.Now().Add(10 * time.Second); exits() == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start while the lock is held: %v\nagent.log:\n%s", err, r.agentLog())
	}
	if exits() == 0 {
		t.Fatalf("no agent exited on the held lock: the race was not made\n%s", r.agentLog())
	}
	t.Logf("lock held: %d agents exited at start before one answered", exits())

	r.stop(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.client().Start(ctx) }()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("two starts at once: %v / %v\nagent.log:\n%s", errs[0], errs[1], r.agentLog())
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("pgrep", "-f", "-x", vpnBin+" agent --state-dir "+r.dir+" --"+ReadyFlag+" 3").Output()
	if pids := strings.Fields(string(out)); len(pids) != 1 || pids[0] != fmt.Sprint(st.AgentPID) {
		t.Fatalf("after two starts at once: agents %v, the answering one %d; want exactly that one", pids, st.AgentPID)
	}
}

// The attacks, as nobody (not in the agent's group): against the real
// agent's socket (root-only here: no clearpath group) the client sees
// "access denied", never "no agent", and Ensure does not try to start
// another agent over it. With the socket opened to everyone, the agent's
// own policy refuses and the client still sees "access denied". With no
// agent, nobody is told that starting one needs root, and nothing is
// written to the state dir.
func TestAccessDeniedIsNotNoAgent(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out := r.asNobody(t, "ensure")
	if !strings.HasPrefix(out, "CLASS=needs-root ERR=no agent is running, and starting one needs root: start the service") {
		t.Errorf("nobody, no agent: %s", out)
	}
	if entries, _ := os.ReadDir(r.dir); len(entries) != 0 {
		t.Errorf("the refused start left %v in the state dir", entries)
	}

	c := r.client()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start: %v\n%s", err, r.agentLog())
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logBefore := r.agentLog()
	for _, op := range []string{"status", "ensure"} {
		if out := r.asNobody(t, op); !strings.HasPrefix(out, "CLASS=no-access ") || !strings.Contains(out, "join the clearpath group or use sudo") {
			t.Errorf("nobody %s, socket root-only: %s", op, out)
		}
	}
	if err := os.Chmod(control.SocketPath(r.dir), 0o666); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"status", "ensure"} {
		if out := r.asNobody(t, op); !strings.HasPrefix(out, "CLASS=no-access ") || !strings.Contains(out, "not root and not a member of group") {
			t.Errorf("nobody %s, socket open to all: %s", op, out)
		}
	}
	after, err := c.Status(ctx)
	if err != nil || after.AgentPID != st.AgentPID || r.agentLog() != logBefore {
		t.Errorf("nobody's attempts changed the agent: pid %d -> %+v (%v); log grew:\n%s", st.AgentPID, after, err, strings.TrimPrefix(r.agentLog(), logBefore))
	}
}

// An agent that cannot run says why on the readiness pipe and Start
// fails at once with that reason: no retries, no waiting out Started's
// budget. Here the socket's path is taken by a plain file.
func TestStartFailsAtOnceWithTheAgentsError(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := os.WriteFile(control.SocketPath(r.dir), []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := r.client().Start(ctx)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "agent exited at start: ") || !strings.Contains(err.Error(), "exists and is not a socket: remove it") {
		t.Fatalf("start: %v, want the agent's own reason\nagent.log:\n%s", err, r.agentLog())
	}
	if n := strings.Count(r.agentLog(), "is not a socket"); n != 1 {
		t.Errorf("%d agents started, want 1 (no retry of a fatal start)\nagent.log:\n%s", n, r.agentLog())
	}
	if took > Started.Budget/2 {
		t.Errorf("start took %s: waited for a timeout (budget %s)", took, Started.Budget)
	}
	t.Logf("failed start reported after %s: %v", took.Round(time.Millisecond), err)
}

// The attack: while Start waits for an agent that is not ready (a stand-in
// that never says so), nobody writes READY=1 into its readiness pipe
// through /proc. The pipe is not theirs to open; Start goes on waiting and
// ends with the stand-in's exit, never "ready".
func TestReadinessCannotBeFaked(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pidFile := filepath.Join(r.dir, "..", "standin.pid")
	standIn := filepath.Join(r.dir, "..", "standin")
	// The first holds the pipe (fd 3) and says nothing for 2 s, then
	// exits; Start's later attempts exit at once.
	script := "#!/bin/sh\n[ -e " + pidFile + " ] && exit 3\necho $$ >" + pidFile + ".new && mv " + pidFile + ".new " + pidFile + "\nexec sleep 2\n"
	if err := os.WriteFile(standIn, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := New(r.dir)
	c.VPN = standIn
	errc := make(chan error, 1)
	go func() { errc <- c.Start(ctx) }()
	var pid string
	for deadline := time.Now().Add(5 * time.Second); pid == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		pid = strings.TrimSpace(string(b))
	}
	if pid == "" {
		t.Fatal("the stand-in agent did not start")
	}
	if target, err := os.Readlink("/proc/" + pid + "/fd/3"); err != nil || !strings.HasPrefix(target, "pipe:") {
		t.Fatalf("the stand-in's fd 3 is %q (%v), want the readiness pipe", target, err)
	}
	out := r.asNobody(t, "fake-ready", "CLEARPATH_LOCAL_HELPER_PID="+pid)
	if !strings.Contains(out, "permission denied") {
		t.Errorf("nobody writing to the readiness pipe: %s", out)
	}
	select {
	case err := <-errc:
		t.Fatalf("start returned while the stand-in had said nothing: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	err := <-errc // StartAttempts stand-ins, each exiting unsaid
	if err == nil || !strings.Contains(err.Error(), "agent exited at start (") {
		t.Fatalf("start with a stand-in that never became ready: %v, want its exit", err)
	}
}
