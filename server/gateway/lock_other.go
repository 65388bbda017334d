//go:build !linux

package gateway

// LockName is the instance lock's file in state_dir.
const LockName = "gateway.lock"

// NetnsLockName is the abstract socket a gateway holds (Linux only).
const NetnsLockName = "@clearpath-gateway"

type instanceLock struct{}

func acquireLock(string, string) (*instanceLock, error) { return nil, errNotLinux }
func (*instanceLock) release()                          {}
