package wgdev_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// privateNetnsEnv marks the re-executed test binary.
const privateNetnsEnv = "WGDEV_TEST_PRIVATE_NETNS"

// TestMain runs the tests in a private, empty network namespace. They run
// wireguard-go inside this process, entering each lab namespace from a
// locked thread; a goroutine of wireguard-go that opens a socket from
// another thread opens it in the process's own namespace. Made private,
// that namespace has nothing but a loopback that is down: nothing such a
// socket sends can leave the machine, and no route change of the machine
// reaches the devices.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 || os.Getenv(privateNetnsEnv) != "" {
		os.Exit(m.Run())
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), privateNetnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "wgdev tests: unshare --net:", err)
		os.Exit(1)
	}
}
