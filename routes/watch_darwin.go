package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Watch calls onChange (at most every debounce) after links, addresses or
// routes of this Mac change, until ctx ends: a new Wi-Fi network or a
// router change re-plans the tunnel (and moves the endpoint pin) within a
// second. It listens on a route socket, where the kernel broadcasts every
// change.
func Watch(ctx context.Context, debounce time.Duration, onChange func()) error {
	fd, err := unix.Socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("route socket: %w", err)
	}
	// Wake up now and then to notice ctx ending; a read blocked on a
	// socket closed by another goroutine is not reliably woken on macOS.
	tv := unix.NsecToTimeval((250 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("route socket: %w", err)
	}
	// A storm of changes must not overflow the 8 KiB default queue
	// unnoticed; an overflow that still happens wakes a re-plan.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, routeSocketBuffer); err != nil {
		unix.Close(fd)
		return fmt.Errorf("route socket: receive buffer: %w", err)
	}
	changed := make(chan struct{}, 1)
	self := os.Getpid()
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 64<<10)
		for ctx.Err() == nil {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			if errors.Is(err, syscall.ENOBUFS) {
				// Messages were lost: re-plan once to be sure.
				select {
				case changed <- struct{}{}:
				default:
				}
				continue
			}
			if err != nil {
				slog.Warn("route socket: stop watching network changes", "err", err)
				return
			}
			if socketChangeMatters(buf[:n], self, linkName) {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() {
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				timer = time.After(debounce)
			case <-timer:
				timer = nil
				onChange()
			}
		}
	}()
	return nil
}

// socketChangeMatters reads what one read of the route socket returned
// (bsdRawMessages: by header, so that RTM_IFINFO without addresses is
// seen) and says whether the tunnel plan depends on it.
func socketChangeMatters(b []byte, self int, name func(int) string) bool {
	msgs, ok := bsdRawMessages(b)
	if !ok {
		return true // unreadable: re-planning once too often is harmless
	}
	return bsdWatchMatters(msgs, self, name)
}

// linkName names interface index i, "" when it is gone.
func linkName(i int) string {
	ifi, err := net.InterfaceByIndex(i)
	if err != nil {
		return ""
	}
	return ifi.Name
}
