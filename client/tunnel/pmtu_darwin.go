package tunnel

import "golang.org/x/sys/unix"

// setDontFragment makes the socket send with "don't fragment" (macOS:
// IP_DONTFRAG, IPV6_DONTFRAG).
func setDontFragment(fd int, v6 bool) error {
	if v6 {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_DONTFRAG, 1)
}
