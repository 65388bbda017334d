package memlimit

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "1GiB": 1 << 30, "512KiB": 512 << 10, "1000": 1000, "10B": 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "0", "12XB", "64 MB", "99999999999GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q): no error", bad)
		}
	}
}

func TestApply(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	log := slog.New(slog.DiscardHandler)
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv(Env, "")
	if got := Apply(log); got != Default || debug.SetMemoryLimit(-1) != Default {
		t.Fatalf("default: Apply = %d, runtime limit %d; want %d", got, debug.SetMemoryLimit(-1), Default)
	}
	t.Setenv(Env, "48MiB")
	if got := Apply(log); got != 48<<20 || debug.SetMemoryLimit(-1) != 48<<20 {
		t.Fatalf("48MiB: Apply = %d, runtime limit %d", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(1 << 40)
	t.Setenv(Env, "off")
	if got := Apply(log); got != 0 || debug.SetMemoryLimit(-1) != 1<<40 {
		t.Fatalf("off: Apply = %d and changed the runtime limit to %d", got, debug.SetMemoryLimit(-1))
	}
	t.Setenv(Env, "")
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := Apply(log); got != 0 || debug.SetMemoryLimit(-1) != 1<<40 {
		t.Fatalf("GOMEMLIMIT set: Apply = %d and changed the runtime limit", got)
	}
}

func TestFollowed(t *testing.T) {
	for _, c := range []struct{ base, held, want int64 }{
		{64 << 20, 10 << 20, 64 << 20},     // small: the base
		{64 << 20, 48 << 20, 64 << 20},     // at the edge
		{64 << 20, 300 << 20, 375 << 20},   // 10,000 peers: a quarter above
		{64 << 20, 300<<20 + 4, 376 << 20}, // rounded up to a MiB
		{512 << 20, 300 << 20, 512 << 20},  // a larger base wins
	} {
		if got := followed(c.base, c.held); got != c.want {
			t.Errorf("followed(%d, %d) = %d, want %d", c.base, c.held, got, c.want)
		}
	}
}

// Follow raises the runtime's limit above what the process holds live.
func TestFollow(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv(Env, "1MiB")
	keep := make([]byte, 40<<20) // held live across the check
	for i := range keep {
		keep[i] = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if base := Follow(ctx, slog.New(slog.DiscardHandler)); base != 1<<20 {
		t.Fatalf("Follow = %d, want the 1 MiB base", base)
	}
	runtime.GC()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) < 50<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d MiB with 40 MiB live, want at least 50 MiB", debug.SetMemoryLimit(-1)>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
	runtime.KeepAlive(keep)
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64MiB", "1GiB", "off", "-3", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n <= 0 {
			t.Fatalf("ParseSize(%q) = %d without error", s, n)
		}
	})
}
