package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/routes/routestest"
)

// crash ends the agent as kill -9 would: its device goes with the process
// (the kernel removes the link and the routes through it), while the
// journal, the rules and the other routes of our table stay. r.a becomes a
// fresh agent (a new process) on the same state dir and system.
func (r *rig) crash() {
	a := r.a
	a.mu.Lock()
	tun := a.tun
	a.tun, a.sess = nil, nil
	if a.stop != nil {
		a.stop()
		a.stop = nil
	}
	a.mu.Unlock()
	if tun != nil {
		tun.Close()
	}
	b := New(a.dir, r.sys, a.log)
	b.edge = a.edge
	r.a = b
	// A real agent takes longer than this to be restarted. Without the
	// wait, the next handshake with the same key can carry the same
	// TAI64N timestamp as the crashed agent's (wireguard-go rounds it
	// down to ~16.8 ms), and the gateway drops it as a replay.
	time.Sleep(tai64nGranularity)
}

// tai64nGranularity is how finely wireguard-go's handshake timestamps
// tell time (tai64n's whitener mask: 2^24 ns).
const tai64nGranularity = 1 << 24 * time.Nanosecond

// startRun runs the agent process (run) on cfg until the test ends or a
// `down` over the socket stops it.
func (r *rig) startRun(cfg Config) (c *control.Client, done chan error) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	ended := make(chan struct{})
	a := r.a
	go func() {
		err := run(ctx, cfg, a.log, func() (*Agent, error) { return a, nil })
		close(ended)
		done <- err
	}()
	r.t.Cleanup(func() {
		cancel()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			r.t.Error("run did not return")
		}
	})
	c = control.NewClient(cfg.Socket)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sctx, c2 := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(sctx)
		c2()
		if err == nil {
			return c, done
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the agent's socket never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A session killed mid-flight leaves rules and routes of ours; the next
// agent process recovers them before it serves the socket, and the state
// is exactly as before the first `vpn up`. Then up and down over the
// socket work, and `down` ends the process, removing socket and pid file.
func TestRunRecoversACrashedSessionThenServes(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	req := r.request()
	req.AllTraffic = true
	if _, err := r.up(req); err != nil {
		t.Fatal(err)
	}
	r.crash()
	if _, rules := r.owned(); len(rules) == 0 || !r.journaled() {
		t.Fatalf("the crash left no rules or no journal: nothing to recover (rules %v)", rules)
	}

	sock := filepath.Join(r.dir, "run", "clearpath.sock")
	cfg := Config{Dir: r.a.dir, Socket: sock, Group: strconv.Itoa(os.Getgid()), Server: r.gw.srv.URL}
	c, done := r.startRun(cfg)
	r.sameAsBefore(before, "after the restarted agent's recovery")
	if r.journaled() {
		t.Error("journal left after recovery")
	}
	if b, err := os.ReadFile(filepath.Join(r.a.dir, "agent.pid")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file: %q %v", b, err)
	}
	if pid, running, known := Running(r.a.dir); !known || !running || pid != os.Getpid() {
		t.Errorf("Running = %d %v %v, want this process", pid, running, known)
	}
	// A second agent on the same state dir is refused by the lock.
	if _, err := Lock(r.a.dir, 0); err == nil || !strings.Contains(err.Error(), "an agent is running") {
		t.Errorf("second lock: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if os.Geteuid() != 0 {
		// Not root: this process is a member of --group. It may not make
		// the agent read a file as root, nor connect elsewhere; nothing
		// is installed.
		bad := r.request()
		bad.TokenFile = "/etc/shadow"
		if _, err := c.Up(ctx, bad); !errors.Is(err, control.ErrNoAccess) || !strings.Contains(err.Error(), "token file") {
			t.Errorf("member naming a token file: %v", err)
		}
		bad = r.request()
		bad.Server = "https://evil.example"
		if _, err := c.Up(ctx, bad); !errors.Is(err, control.ErrNoAccess) {
			t.Errorf("member naming another server: %v", err)
		}
		r.sameAsBefore(before, "after refused member requests")
	} else {
		t.Log("running as root: the member refusals over the socket run only as non-root (TestPolicyForMembers covers them here)")
	}
	st, err := c.Up(ctx, r.request())
	if err != nil || st.State != control.StateUp {
		t.Fatalf("up over the socket: %+v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(r.a.dir, ServerFile)); err == nil {
		t.Error("an up recorded a server although --server is configured")
	}
	if _, err := c.Down(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("down over the socket did not end the agent")
	}
	r.sameAsBefore(before, "after down over the socket")
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after the agent stopped: %v", err)
	}
	if _, _, known := Running(r.a.dir); !known {
		t.Error("Running cannot tell after the agent stopped")
	}
	if _, running, _ := Running(r.a.dir); running {
		t.Error("Running says an agent runs after it stopped")
	}
}

// What a group member may do over the socket, as the agent composes its
// policy from --group, --server and the server file a first root `up`
// writes; checked with the peers the kernel would report.
func TestPolicyForMembers(t *testing.T) {
	dir := t.TempDir()
	a := New(dir, routestest.New(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	member := control.Peer{UID: 1000, GID: 1000, Groups: []uint32{4242}}
	stranger := control.Peer{UID: 1001, GID: 1001}
	root := control.Peer{}
	up := func(server string) *control.UpRequest { return &control.UpRequest{Server: server, Token: "t"} }
	denied := func(err error, says string) bool {
		var d *control.DeniedError
		return errors.As(err, &d) && strings.Contains(err.Error(), says)
	}

	a.cfg = Config{Group: "-"}
	pol, err := a.policy()
	if err != nil || pol.HasGroup {
		t.Fatalf("--group -: %+v %v", pol, err)
	}
	if err := pol.Allow(member, "status", nil); !denied(err, "not root") {
		t.Errorf("no group, a non-root status: %v", err)
	}
	if err := pol.Allow(root, "up", up("https://anything.example")); err != nil {
		t.Errorf("root refused: %v", err)
	}

	a.cfg = Config{Group: "4242"}
	if pol, err = a.policy(); err != nil || !pol.HasGroup || pol.Group != 4242 {
		t.Fatalf("--group 4242: %+v %v", pol, err)
	}
	if err := pol.Allow(stranger, "status", nil); !denied(err, "not a member") {
		t.Errorf("a stranger's status: %v", err)
	}
	if err := pol.Allow(member, "status", nil); err != nil {
		t.Errorf("a member's status: %v", err)
	}
	if err := pol.Allow(member, "up", up("https://gw.example")); !denied(err, "no server is configured") {
		t.Errorf("member up before any server is known: %v", err)
	}
	// The first root up records its server; members may then use it only.
	a.rememberServer("https://gw.example")
	a.rememberServer("https://evil.example") // the first one stays
	if got := a.memberServer(); got != "https://gw.example" {
		t.Fatalf("member server %q", got)
	}
	if err := pol.Allow(member, "up", up("https://GW.example/")); err != nil {
		t.Errorf("member up to the recorded server: %v", err)
	}
	if err := pol.Allow(member, "up", up("https://evil.example")); !denied(err, "other than the configured one") {
		t.Errorf("member up to another server: %v", err)
	}
	tf := up("https://gw.example")
	tf.TokenFile = "/etc/shadow"
	if err := pol.Allow(member, "up", tf); !denied(err, "token file") {
		t.Errorf("member naming a token file: %v", err)
	}
	// --server wins over the file.
	a.cfg.Server = "https://pinned.example"
	if err := pol.Allow(member, "up", up("https://gw.example")); !denied(err, "pinned.example") {
		t.Errorf("member up with --server set: %v", err)
	}

	a.cfg = Config{Group: "no-such-group-clearpath-test"}
	if _, err := a.policy(); err == nil || !strings.Contains(err.Error(), "no-such-group-clearpath-test") {
		t.Errorf("unknown --group: %v", err)
	}
	if _, err := user.LookupGroup(control.DefaultGroup); err != nil {
		// No clearpath group here: by default only root may drive the agent.
		a.cfg = Config{}
		if pol, err := a.policy(); err != nil || pol.HasGroup {
			t.Errorf("default group absent: %+v %v", pol, err)
		}
	}
}

// The socket refuses what is not a socket at its path (an attacker's
// file is not removed), and is made 0600 without a group.
func TestListenRefusesAPlantedFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	os.WriteFile(sock, []byte("planted"), 0o644)
	if _, err := listen(sock, control.Policy{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "planted" {
		t.Error("the planted file was changed")
	}
	os.Remove(sock)
	ln, err := listen(sock, control.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}
