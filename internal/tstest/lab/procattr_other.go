//go:build !linux

package lab

import "syscall"

// procAttr: the lab needs Linux network namespaces and does not run
// elsewhere; it builds so that the module cross-compiles. Without
// Pdeathsig, children get their own process group only.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
