package memlimit

import (
	"log/slog"
	"runtime/debug"
	"testing"
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
