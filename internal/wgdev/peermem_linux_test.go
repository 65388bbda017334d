package wgdev_test

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
)

// BenchmarkPeerMemory: what 10,000 peers cost a running device, in heap
// and goroutine stacks per peer (the gateway holds one peer per device).
func BenchmarkPeerMemory(b *testing.B) {
	if !privateNetns() {
		b.Skip("needs root and the private network namespace TestMain makes")
	}
	const peers = 10000
	key, _ := wgtypes.GeneratePrivateKey()
	var conf strings.Builder
	fmt.Fprintf(&conf, "private_key=%x\nlisten_port=0\n", key[:])
	for i := range peers {
		k, _ := wgtypes.GeneratePrivateKey()
		pk := k.PublicKey()
		fmt.Fprintf(&conf, "public_key=%x\nallowed_ip=100.64.%d.%d/32\n", pk[:], i>>8, i&0xff)
	}
	for range b.N {
		d, err := wgdev.CreateWithInflight("cppeermem", 1420, slog.New(slog.DiscardHandler), wgdev.DefaultInflight)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Up(); err != nil {
			b.Fatal(err)
		}
		before := memNow()
		if err := d.Dev.IpcSet(conf.String()); err != nil {
			b.Fatal(err)
		}
		after := memNow()
		b.ReportMetric(float64(after.heap-before.heap)/peers, "heap-B/peer")
		b.ReportMetric(float64(after.stack-before.stack)/peers, "stack-B/peer")
		b.ReportMetric(float64(after.goroutines-before.goroutines)/peers, "goroutines/peer")
		d.Close()
	}
}

type mem struct{ heap, stack, goroutines uint64 }

func memNow() mem {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return mem{m.HeapInuse, m.StackInuse, uint64(runtime.NumGoroutine())}
}
