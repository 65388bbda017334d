package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The helper is this test binary run as another user (setpriv): it makes
// one control request and prints the outcome as JSON.
const helperEnv = "CLEARPATH_CONTROL_HELPER"

func init() {
	op := os.Getenv(helperEnv)
	if op == "" {
		return
	}
	c := NewClient(os.Getenv("CLEARPATH_CONTROL_SOCKET"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	switch op {
	case "status":
		_, err = c.Status(ctx)
	case "down":
		_, err = c.Down(ctx)
	case "dns-repoint":
		_, err = c.RepointDNS(ctx)
	default: // "up:" + JSON UpRequest
		var req UpRequest
		json.Unmarshal([]byte(strings.TrimPrefix(op, "up:")), &req)
		_, err = c.Up(ctx, req)
	}
	if err != nil {
		fmt.Printf("DENIED=%v ERR=%s\n", errorsIsNoAccess(err), err)
		os.Exit(3)
	}
	fmt.Println("OK")
	os.Exit(0)
}

// unprivileged copies the test binary where nobody can run it.
// listenAgent listens on dir/agent.sock, owned by root and group gid (0:
// left as made), with mode.
func listenAgent(t *testing.T, dir string, gid int, mode os.FileMode) (string, net.Listener) {
	t.Helper()
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if gid != 0 {
		os.Chown(sock, 0, gid)
	}
	os.Chmod(sock, mode)
	return sock, ln
}

func unprivileged(t *testing.T) (bin, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a copy of itself as nobody (setpriv)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err = os.MkdirTemp("", "cp-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "control.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// asUser runs the helper as uid 65534 with the given groups ("" none).
func asUser(t *testing.T, bin, sock, groups, op string) (string, bool) {
	t.Helper()
	args := []string{"--reuid", "65534", "--regid", "65534"}
	if groups == "" {
		args = append(args, "--clear-groups")
	} else {
		args = append(args, "--groups", groups)
	}
	cmd := exec.Command("setpriv", append(args, "--", bin, "-test.run=^$")...)
	cmd.Env = append(os.Environ(), helperEnv+"="+op, "CLEARPATH_CONTROL_SOCKET="+sock)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

func upOp(r UpRequest) string {
	b, _ := json.Marshal(r)
	return "up:" + string(b)
}

// Attacks on the control socket as nobody. The socket is made world
// writable here so that the file mode does not stop anyone: what refuses is
// the agent's per-request decision on the caller's SO_PEERCRED. A
// non-member is refused everything; a member (gid 54321, supplementary) may
// read the status and connect to the configured server, but not name a
// token file, an interface or another server; root may.
func TestPeerCredentialsDecidePerRequest(t *testing.T) {
	bin, dir := unprivileged(t)
	sock, ln := listenAgent(t, dir, 0, 0o666)
	h := &fake{}
	const gid = 54321
	pol := Policy{Group: gid, HasGroup: true, GroupName: "cptest", Server: func() string { return "https://gw.example" }}
	srv := Serve(ln, h, nil, pol)
	defer srv.Close()

	good := UpRequest{Server: "https://gw.example", Token: "t", Network: "eng"}
	cases := []struct {
		name, groups, op string
		ok               bool
		want             string
	}{
		{"non-member status", "", "status", false, "not a member of group cptest"},
		{"non-member up", "", upOp(good), false, "join the clearpath group or use sudo"},
		{"non-member down", "", "down", false, "not a member"},
		{"member status", "100,54321", "status", true, ""},
		{"member up to the configured server", "54321", upOp(good), true, ""},
		{"member names a token file", "54321", upOp(UpRequest{Server: "https://gw.example", Token: "t", TokenFile: "/root/secret"}), false, "only root may name a token file"},
		{"member names an interface", "54321", upOp(UpRequest{Server: "https://gw.example", Token: "t", Interface: "eth0"}), false, "only root may name the tunnel interface"},
		{"member names another server", "54321", upOp(UpRequest{Server: "https://evil.example", Token: "t"}), false, "other than the configured one (https://gw.example)"},
	}
	for _, c := range cases {
		h.up = UpRequest{}
		out, ok := asUser(t, bin, sock, c.groups, c.op)
		if ok != c.ok || !strings.Contains(out, c.want) {
			t.Errorf("%s: ok=%v %q; want ok=%v and %q", c.name, ok, out, c.ok, c.want)
		}
		if !c.ok && h.up.Token != "" {
			t.Errorf("%s: the refused request reached the agent: %+v", c.name, h.up)
		}
		if !c.ok && !strings.Contains(out, "DENIED=true") {
			t.Errorf("%s: the client does not see a refusal (ErrNoAccess): %q", c.name, out)
		}
	}
	// Root may name all of it.
	c := NewClient(sock)
	if _, err := c.Up(context.Background(), UpRequest{Server: "https://other.example", Token: "t", TokenFile: "/etc/token", Interface: "cp9"}); err != nil {
		t.Fatalf("root refused: %v", err)
	}
	if h.up.TokenFile != "/etc/token" {
		t.Fatalf("root's request did not reach the agent: %+v", h.up)
	}
}

// With the socket's mode as the agent sets it (0660, group 54321), a
// non-member cannot even connect and is told what to do.
func TestSocketModeKeepsNonMembersOut(t *testing.T) {
	bin, dir := unprivileged(t)
	sock, ln := listenAgent(t, dir, 54321, 0o660)
	srv := Serve(ln, &fake{}, nil, Policy{Group: 54321, HasGroup: true, Server: func() string { return "" }})
	defer srv.Close()
	out, ok := asUser(t, bin, sock, "", "status")
	if ok || !strings.Contains(out, "the agent runs as root; join the clearpath group or use sudo") || !strings.Contains(out, "DENIED=true") {
		t.Errorf("non-member: ok=%v %q", ok, out)
	}
	if out, ok := asUser(t, bin, sock, "54321", "status"); !ok {
		t.Errorf("member: %q", out)
	}
	// No server configured yet: a member cannot pick one.
	out, ok = asUser(t, bin, sock, "54321", upOp(UpRequest{Server: "https://any.example", Token: "t"}))
	if ok || !strings.Contains(out, "no server is configured") {
		t.Errorf("member with no configured server: ok=%v %q", ok, out)
	}
}

// The attack: nobody, not in the group, asks the agent to rewrite
// resolv.conf (POST /v1/dns/repoint) on a world-writable socket. The
// agent's policy refuses it before RepointDNS runs; a member may.
func TestRepointDNSRefusedToNonMembers(t *testing.T) {
	bin, dir := unprivileged(t)
	sock, ln := listenAgent(t, dir, 0, 0o666)
	h := &repointer{stub: true}
	const gid = 54321
	srv := Serve(ln, h, nil, Policy{Group: gid, HasGroup: true, GroupName: "cptest"})
	defer srv.Close()
	out, ok := asUser(t, bin, sock, "", "dns-repoint")
	if ok || !strings.Contains(out, "not a member of group cptest") || !strings.Contains(out, "DENIED=true") || h.calls.Load() != 0 {
		t.Fatalf("non-member: ok=%v %q, RepointDNS ran %d times; want refused before it runs", ok, out, h.calls.Load())
	}
	if out, ok := asUser(t, bin, sock, "54321", "dns-repoint"); !ok || h.calls.Load() != 1 {
		t.Fatalf("member: ok=%v %q, calls %d", ok, out, h.calls.Load())
	}
}
