package units

import (
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {14029, "13.7 KiB"}, {5 << 30, "5.0 GiB"}, {1 << 60, "1.0 EiB"}, {1<<63 - 1, "8.0 EiB"}} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {400 * time.Millisecond, "0s"}, {1500 * time.Millisecond, "2s"}, {59 * time.Second, "59s"},
		{75 * time.Second, "1m15s"}, {5 * time.Minute, "5m0s"}, {time.Hour + 5*time.Minute + 3*time.Second, "1h5m"},
		{47*time.Hour + 59*time.Minute, "47h59m"}, {50 * time.Hour, "2d2h"}, {7 * 24 * time.Hour, "7d0h"},
		{-90 * time.Second, "1m30s"}, {time.Duration(1<<63 - 1), "106751d23h"}, {time.Duration(-1 << 63), "106751d23h"},
	} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
