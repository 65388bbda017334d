// Package testpg starts a throwaway PostgreSQL server (Debian's binaries)
// on loopback for tests of the gateway's PostgreSQL store.
package testpg

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// BinDir is where Debian installs the server binaries.
var BinDir = "/usr/lib/postgresql/15/bin"

// Start runs a fresh cluster and returns its DSN; it is stopped and deleted
// when the test ends. Without the binaries the test fails in CI (CI=true),
// where .ci/run installs them, and is skipped elsewhere.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t).DSN
}

// Server is a running throwaway cluster.
type Server struct {
	// DSN connects over TCP to 127.0.0.1 (this network namespace only).
	DSN string
	// SocketDSN connects over the server's unix socket, which processes in
	// every network namespace of the machine can reach (lab gateways).
	SocketDSN string
}

// StartServer is Start, returning both ways to connect.
func StartServer(t testing.TB) Server {
	t.Helper()
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL binaries missing in %s: apt-get install postgresql (make deps)", BinDir)
		}
		t.Skipf("PostgreSQL not installed (%s): apt-get install postgresql", BinDir)
	}
	dir, err := os.MkdirTemp("", "clearpath-pg-")
	if err != nil {
		t.Fatal(err)
	}
	runAs := func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: run the server as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chmod(dir, 0o755)
		os.Chown(dir, uid, gid)
		runAs = func(args ...string) *exec.Cmd {
			return exec.Command("setpriv", append([]string{"--reuid", u.Uid, "--regid", u.Gid, "--clear-groups", "--"}, args...)...)
		}
	}
	port := freePort(t)
	data := filepath.Join(dir, "data")
	if out, err := runAs(filepath.Join(BinDir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", port, dir)
	if out, err := runAs(filepath.Join(BinDir, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		runAs(filepath.Join(BinDir, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	})
	return Server{
		DSN:       fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		SocketDSN: fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", dir, port),
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
