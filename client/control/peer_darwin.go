package control

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerOf reads the peer's credentials with LOCAL_PEERCRED: uid and groups
// (the first is the effective gid).
func peerOf(c *net.UnixConn) (Peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var xc *unix.Xucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		xc, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if serr != nil {
		return Peer{}, fmt.Errorf("LOCAL_PEERCRED: %w", serr)
	}
	p := Peer{UID: xc.Uid}
	n := min(int(xc.Ngroups), len(xc.Groups))
	if n > 0 {
		p.GID = xc.Groups[0]
		p.Groups = append([]uint32(nil), xc.Groups[1:n]...)
	}
	return p, nil
}
