package routes

// The macOS kernel side of the backend: sysctl NET_RT_DUMP and
// NET_RT_IFLIST, and requests on a PF_ROUTE socket, through
// golang.org/x/net/route. Every decision is made in bsdmsg.go and
// bsdsystem.go, which build and are tested on every platform; this file
// only converts between x/net/route's messages and bsdRouteMsg and moves
// them.

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// bsdmsg.go declares the darwin constants itself so that it builds
// everywhere; these fail to compile if one differs from the kernel's.
var (
	_ [0]struct{} = [rtfUp - unix.RTF_UP]struct{}{}
	_ [0]struct{} = [rtfGateway - unix.RTF_GATEWAY]struct{}{}
	_ [0]struct{} = [rtfHost - unix.RTF_HOST]struct{}{}
	_ [0]struct{} = [rtfReject - unix.RTF_REJECT]struct{}{}
	_ [0]struct{} = [rtfDynamic - unix.RTF_DYNAMIC]struct{}{}
	_ [0]struct{} = [rtfModified - unix.RTF_MODIFIED]struct{}{}
	_ [0]struct{} = [rtfDone - unix.RTF_DONE]struct{}{}
	_ [0]struct{} = [rtfCloning - unix.RTF_CLONING]struct{}{}
	_ [0]struct{} = [rtfXResolve - unix.RTF_XRESOLVE]struct{}{}
	_ [0]struct{} = [rtfLLInfo - unix.RTF_LLINFO]struct{}{}
	_ [0]struct{} = [rtfStatic - unix.RTF_STATIC]struct{}{}
	_ [0]struct{} = [rtfBlackhole - unix.RTF_BLACKHOLE]struct{}{}
	_ [0]struct{} = [rtfProto2 - unix.RTF_PROTO2]struct{}{}
	_ [0]struct{} = [rtfProto1 - unix.RTF_PROTO1]struct{}{}
	_ [0]struct{} = [rtfPRCloning - unix.RTF_PRCLONING]struct{}{}
	_ [0]struct{} = [rtfWasCloned - unix.RTF_WASCLONED]struct{}{}
	_ [0]struct{} = [rtfProto3 - unix.RTF_PROTO3]struct{}{}
	_ [0]struct{} = [rtfLocal - unix.RTF_LOCAL]struct{}{}
	_ [0]struct{} = [rtfBroadcast - unix.RTF_BROADCAST]struct{}{}
	_ [0]struct{} = [rtfMulticast - unix.RTF_MULTICAST]struct{}{}
	_ [0]struct{} = [rtfIfScope - unix.RTF_IFSCOPE]struct{}{}
	_ [0]struct{} = [rtfCondemned - unix.RTF_CONDEMNED]struct{}{}
	_ [0]struct{} = [rtfIfRef - unix.RTF_IFREF]struct{}{}
	_ [0]struct{} = [rtfProxy - unix.RTF_PROXY]struct{}{}
	_ [0]struct{} = [rtfRouter - unix.RTF_ROUTER]struct{}{}
	_ [0]struct{} = [rtfGlobal - unix.RTF_GLOBAL]struct{}{}

	_ [0]struct{} = [rtmAdd - unix.RTM_ADD]struct{}{}
	_ [0]struct{} = [rtmDelete - unix.RTM_DELETE]struct{}{}
	_ [0]struct{} = [rtmGet - unix.RTM_GET]struct{}{}
	_ [0]struct{} = [rtmChange - unix.RTM_CHANGE]struct{}{}
	_ [0]struct{} = [rtmNewAddr - unix.RTM_NEWADDR]struct{}{}
	_ [0]struct{} = [rtmDelAddr - unix.RTM_DELADDR]struct{}{}
	_ [0]struct{} = [rtmIfInfo - unix.RTM_IFINFO]struct{}{}
	_ [0]struct{} = [bsdAFInet - unix.AF_INET]struct{}{}
	_ [0]struct{} = [bsdAFInet6 - unix.AF_INET6]struct{}{}
	_ [0]struct{} = [bsdAFLink - unix.AF_LINK]struct{}{}
	_ [0]struct{} = [iftEther - unix.IFT_ETHER]struct{}{}
	_ [0]struct{} = [iftLoop - unix.IFT_LOOP]struct{}{}
	_ [0]struct{} = [iftGif - unix.IFT_GIF]struct{}{}
	_ [0]struct{} = [iftStf - unix.IFT_STF]struct{}{}
	_ [0]struct{} = [iftPPP - unix.IFT_PPP]struct{}{}
	_ [0]struct{} = [iftBrdg - unix.IFT_BRIDGE]struct{}{}
	_ [0]struct{} = [iftCell - unix.IFT_CELLULAR]struct{}{}
	_ [0]struct{} = [iffUp - unix.IFF_UP]struct{}{}
	_ [0]struct{} = [iffLoopback - unix.IFF_LOOPBACK]struct{}{}

	_ [0]struct{} = [bsdSockaddrDLSize - unix.SizeofSockaddrDatalink]struct{}{}
	_ [0]struct{} = [bsdRtMsghdrSize - unix.SizeofRtMsghdr]struct{}{}
)

// NewSystem returns the System of this Mac: its routing table through the
// route socket.
func NewSystem() (System, error) { return newBSDSystem(darwinKernel{}), nil }

// darwinKernel is bsdKernel on the real kernel.
type darwinKernel struct{}

// requestTimeout bounds a request, however busy the route socket is; the
// kernel answers at once, so only a lost reply ever waits this long.
const requestTimeout = 5 * time.Second

func (darwinKernel) Interfaces() ([]bsdIfMsg, []bsdIfAddrMsg, error) {
	b, err := route.FetchRIB(unix.AF_UNSPEC, route.RIBTypeInterface, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("NET_RT_IFLIST: %w", err)
	}
	msgs, err := parseRIB(route.RIBTypeInterface, b)
	if err != nil {
		return nil, nil, fmt.Errorf("NET_RT_IFLIST: %w", err)
	}
	ifs, addrs := fromInterfaceMessages(msgs)
	return ifs, addrs, nil
}

func (darwinKernel) Routes() ([]bsdRouteMsg, error) {
	b, err := route.FetchRIB(unix.AF_UNSPEC, route.RIBTypeRoute, 0)
	if err != nil {
		return nil, fmt.Errorf("NET_RT_DUMP: %w", err)
	}
	msgs, err := parseRIB(route.RIBTypeRoute, b)
	if err != nil {
		return nil, fmt.Errorf("NET_RT_DUMP: %w", err)
	}
	var out []bsdRouteMsg
	for _, m := range msgs {
		if rm, ok := m.(*route.RouteMessage); ok {
			out = append(out, fromRouteMessage(rm))
		}
	}
	return out, nil
}

func (darwinKernel) Request(m bsdRouteMsg) (bsdRouteMsg, error) {
	fd, err := unix.Socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return bsdRouteMsg{}, fmt.Errorf("route socket: %w", err)
	}
	defer unix.Close(fd)
	// Every listener gets every change on the machine in a receive queue
	// of 8 KiB (raw_cb.h RAWRCVQ) that drops what does not fit: room
	// for a storm of others' changes before our reply.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, routeSocketBuffer); err != nil {
		return bsdRouteMsg{}, fmt.Errorf("route socket: receive buffer: %w", err)
	}
	return exchange(fdConn(fd), m, os.Getpid(), time.Now)
}

// routeSocketBuffer is the receive buffer of a request's route socket.
const routeSocketBuffer = 1 << 20

// routeConn is a route socket as a request uses it: the real one
// (fdConn), or in tests one that models XNU's receive queue.
type routeConn interface {
	Write(b []byte) error
	// Read returns the next message(s), or EAGAIN once deadline passes.
	Read(b []byte, deadline time.Time) (int, error)
}

// fdConn is a PF_ROUTE socket.
type fdConn int

func (c fdConn) Write(b []byte) error {
	_, err := unix.Write(int(c), b)
	return err
}

func (c fdConn) Read(b []byte, deadline time.Time) (int, error) {
	left := time.Until(deadline)
	if left <= 0 {
		return 0, syscall.EAGAIN
	}
	tv := unix.NsecToTimeval(max(left, time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(int(c), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, err
	}
	return unix.Read(int(c), b)
}

// errNoReply: the reply did not come before the deadline.
var errNoReply = errors.New("no reply")

// exchange sends m on c and returns the kernel's answer to it, within
// requestTimeout overall however busy the socket is.
//
// route_output returns its error to the write (rtsock.c: the errno of
// RTM_ADD and RTM_DELETE is the write's), so a successful write of an add
// or delete is the kernel's answer: its echo on the socket is not waited
// for, as route(8) does not. Only RTM_GET needs its reply, which the
// receive queue may have dropped: it is asked again, with a fresh
// sequence number, until the deadline.
func exchange(c routeConn, m bsdRouteMsg, pid int, now func() time.Time) (bsdRouteMsg, error) {
	deadline := now().Add(requestTimeout)
	buf := make([]byte, 64<<10)
	for attempt := 1; ; attempt++ {
		wire, err := toRouteMessage(m, pid).Marshal()
		if err == nil {
			wire, err = bsdFullLinkAddrs(wire, m)
		}
		if err != nil {
			return bsdRouteMsg{}, fmt.Errorf("route socket: build request: %w", err)
		}
		// The kernel refuses with the errno of the write (EEXIST, ESRCH,
		// EPERM when not root, ...).
		if err := c.Write(wire); err != nil {
			return bsdRouteMsg{}, fmt.Errorf("route socket: %w", err)
		}
		if m.Type != rtmGet {
			reply := m
			reply.Flags |= rtfDone
			return reply, nil
		}
		wait := now().Add(requestTimeout / 3)
		if attempt == 3 || wait.After(deadline) {
			wait = deadline
		}
		reply, err := awaitReply(c, buf, pid, m.Seq, wait, now)
		if err == nil {
			return reply, nil
		}
		if !errors.Is(err, errNoReply) || attempt == 3 || !now().Before(deadline) {
			return bsdRouteMsg{}, fmt.Errorf("route socket: %w within %s (%d requests)", err, requestTimeout, attempt)
		}
		m.Seq = int(bsdSeq.Add(1)) // a late reply to the last one is not taken for the next
	}
}

// awaitReply reads until the reply to (pid, seq) or the deadline.
func awaitReply(c routeConn, buf []byte, pid, seq int, deadline time.Time, now func() time.Time) (bsdRouteMsg, error) {
	for now().Before(deadline) {
		n, err := c.Read(buf, deadline)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return bsdRouteMsg{}, fmt.Errorf("read reply: %w", err)
		}
		if reply, ok := matchReply(buf[:n], pid, seq); ok {
			return reply, nil
		}
		// Every other change on the machine is broadcast on the socket too.
	}
	return bsdRouteMsg{}, errNoReply
}

// matchReply finds the reply to request seq of process pid in what the
// route socket delivered.
func matchReply(b []byte, pid, seq int) (bsdRouteMsg, bool) {
	msgs, err := parseRIB(route.RIBTypeRoute, b)
	if err != nil {
		return bsdRouteMsg{}, false // not ours: we send only what we can parse back
	}
	for _, m := range msgs {
		if rm, ok := m.(*route.RouteMessage); ok && int(rm.ID) == pid && rm.Seq == seq {
			return fromRouteMessage(rm), true
		}
	}
	return bsdRouteMsg{}, false
}
