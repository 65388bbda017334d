package lab

import "syscall"

// procAttr makes children die with us (a test binary killed by a timeout
// must not leave a gateway or Dex running) and puts them in their own
// process group, so a Ctrl-C at the terminal reaches only us: the lab then
// stops them in order, and the `ip netns delete` of the teardown is not
// killed half way by the same Ctrl-C.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
