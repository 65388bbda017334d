// Package memlimit sets the Go runtime's soft memory limit of a long-running
// tunnel process (the client agent). wireguard-go keeps every packet in its
// own 64 KiB buffer and its pools let go of them only at a garbage
// collection; with the default policy (GOGC=100, no limit) the heap may
// double before that, and after a bulk transfer the pages stay resident.
// A limit makes the collector run, and return freed pages to the kernel,
// before the process grows past it. See bench/ for what it buys.
package memlimit

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// Env chooses the limit: a size ("48MiB", "64MiB", bytes) or "off".
// GOMEMLIMIT, when set, wins: the Go runtime has applied it already.
const Env = "CLEARPATH_MEMORY_LIMIT"

// Default is the limit when neither variable is set.
const Default = 64 << 20

// Apply sets the limit from the environment (or Default) and returns it
// (0: none was set here).
func Apply(log *slog.Logger) int64 {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Debug("memory limit from GOMEMLIMIT", "value", v)
		return 0
	}
	limit := int64(Default)
	if v := envvar.Get(strings.TrimPrefix(Env, envvar.Prefix)); v != "" {
		if strings.EqualFold(v, "off") {
			return 0
		}
		n, err := ParseSize(v)
		if err != nil {
			log.Warn("ignoring "+Env, "err", err)
		} else {
			limit = n
		}
	}
	debug.SetMemoryLimit(limit)
	return limit
}

// ParseSize reads a byte count with an optional B, KiB, MiB or GiB suffix
// (GOMEMLIMIT's syntax).
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("memory limit %q: want a positive size such as 64MiB, or off", s)
	}
	return n * mult, nil
}
