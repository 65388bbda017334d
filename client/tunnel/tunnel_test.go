package tunnel

import (
	"testing"
)

func TestParseStats(t *testing.T) {
	s := parseStats("private_key=00\npublic_key=11\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\nrx_bytes=268\ntx_bytes=356\nerrno=0\n")
	if s.RxBytes != 268 || s.TxBytes != 356 || s.LastHandshake.Unix() != 1700000000 {
		t.Fatalf("stats = %+v", s)
	}
	if z := parseStats("last_handshake_time_sec=0\n"); !z.LastHandshake.IsZero() {
		t.Fatal("no handshake must read as zero time")
	}
}
