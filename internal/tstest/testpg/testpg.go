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

// Server is a running throwaway cluster that a test can stop and start
// again (to see what a gateway does while its store is unreachable).
type Server struct {
	// DSN reaches the server over TCP on 127.0.0.1.
	DSN string
	// SocketDSN reaches it over its unix socket, which works from inside
	// other network namespaces too (the socket is a file).
	SocketDSN string

	t     testing.TB
	data  string
	opts  string
	dir   string
	runAs func(args ...string) *exec.Cmd
}

// StartServer is Start returning the server.
func StartServer(t testing.TB) *Server {
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
	s := &Server{
		DSN:       fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		SocketDSN: fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", dir, port),
		t:         t, data: data, dir: dir, runAs: runAs,
		opts: fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", port, dir),
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		runAs(filepath.Join(BinDir, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	})
	return s
}

// Stop stops the server at once (clients see their connections drop).
func (s *Server) Stop() error {
	if out, err := s.runAs(filepath.Join(BinDir, "pg_ctl"), "-D", s.data, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Restart starts the (stopped) server again with the same data and port.
func (s *Server) Restart() error {
	if out, err := s.runAs(filepath.Join(BinDir, "pg_ctl"), "-D", s.data, "-o", s.opts, "-l", filepath.Join(s.dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	return nil
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
