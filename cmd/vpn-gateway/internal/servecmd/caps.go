package servecmd

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

const capNetAdmin = 12 // linux/capability.h

// needNetAdmin refuses to serve without CAP_NET_ADMIN, before anything is
// touched: without it the first netlink call or /proc/sys write fails
// with a bare "operation not permitted" or "permission denied".
func needNetAdmin() error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil // not Linux, or no /proc: let serve say what fails
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil || eff&(1<<capNetAdmin) != 0 {
				return nil
			}
			return errors.New("serve needs CAP_NET_ADMIN (interfaces, routes, forwarding): run it as root " +
				"(sudo, or systemctl start clearpath-gateway), or give its container --cap-add NET_ADMIN")
		}
	}
	return nil
}
