// Package memlimit sets the Go runtime's soft memory limit of a long-running
// tunnel process (the client agent). wireguard-go keeps every packet in its
// own 64 KiB buffer and its pools let go of them only at a garbage
// collection; with the default policy (GOGC=100, no limit) the heap may
// double before that, and after a bulk transfer the pages stay resident.
// A limit makes the collector run, and return freed pages to the kernel,
// before the process grows past it. See bench/ for what it buys.
package memlimit

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

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

// Headroom is how far above what a process holds live a following limit
// (Follow) lets its heap grow before the collector runs, as a fraction of
// what it holds: 1/4 (GOGC=25, where the default is 100).
const Headroom = 4

// Follow sets the limit as Apply does, then keeps it at least a quarter
// (Headroom) above the memory the process holds live (heap objects that survived the
// last collection, stacks, runtime structures), checked every second until
// ctx is done. A small process stays under the limit; one that holds more
// than it (a gateway with thousands of peers) collects each time its
// garbage reaches a quarter of what it holds, instead of continuously as a
// fixed limit below its live heap would make it. It returns the base limit (0: none, nothing follows).
func Follow(ctx context.Context, log *slog.Logger) int64 {
	base := Apply(log)
	if base == 0 {
		return 0
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		cur := base
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if want := followed(base, held()); want != cur {
				debug.SetMemoryLimit(want)
				cur = want
			}
		}
	}()
	return base
}

// followed is the limit for a process holding held bytes live: base, or
// held and a quarter, rounded up to a MiB so that small changes do not
// move it.
func followed(base, held int64) int64 {
	want := (held + held/Headroom + 1<<20 - 1) &^ (1<<20 - 1)
	return max(base, want)
}

// held is the memory the process holds live: the heap that survived the
// last collection plus the runtime's memory outside heap spans (stacks,
// metadata, buffers).
func held() int64 {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	metrics.Read(s)
	var v [6]int64
	for i, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0
		}
		v[i] = int64(x.Value.Uint64())
	}
	return v[0] + v[1] - v[2] - v[3] - v[4] - v[5]
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
