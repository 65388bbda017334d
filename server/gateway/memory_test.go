package gateway

import (
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkDevicePeers10k: the Go heap a wireguard-go device holds for
// 10,000 peers (each with a preshared key and two allowed IPs), configured
// through UAPI as the gateway does. The device is never brought up, so no
// socket or TUN is touched. This is the part of the gateway's memory per
// peer that the userspace WireGuard implementation costs.
func BenchmarkDevicePeers10k(b *testing.B) {
	const peers = 10000
	for range b.N {
		before := heapInUse()
		dev := device.NewDevice(tuntest.NewChannelTUN().TUN(), conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
		priv, _ := wgtypes.GeneratePrivateKey()
		if err := dev.IpcSet("private_key=" + hex.EncodeToString(priv[:]) + "\n"); err != nil {
			b.Fatal(err)
		}
		empty := heapInUse()
		var cfg strings.Builder
		for i := range peers {
			k, _ := wgtypes.GeneratePrivateKey()
			pub := k.PublicKey()
			fmt.Fprintf(&cfg, "public_key=%s\npreshared_key=%s\nreplace_allowed_ips=true\nallowed_ip=100.64.%d.%d/32\nallowed_ip=fd00:64::%x/128\n",
				hex.EncodeToString(pub[:]), hex.EncodeToString(k[:]), i/250, i%250+2, i+2)
		}
		if err := dev.IpcSet(cfg.String()); err != nil {
			b.Fatal(err)
		}
		cfg.Reset()
		full := heapInUse()
		b.ReportMetric(float64(full-empty)/peers, "heap-bytes/peer")
		b.ReportMetric(float64(full-before), "heap-bytes")
		dev.Close()
	}
}
