package config

import (
	"strings"
	"testing"
	"time"
)

func TestIdlePeerTimeout(t *testing.T) {
	c, err := Parse([]byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	if c.IdlePeers() != DefaultIdlePeerTimeout {
		t.Errorf("default idle_peer_timeout %v, want %v", c.IdlePeers(), DefaultIdlePeerTimeout)
	}
	c, err = Parse([]byte(Example + "idle_peer_timeout: 90s\n"))
	if err != nil || c.IdlePeers() != 90*time.Second {
		t.Fatalf("idle_peer_timeout 90s: %v, %v", c, err)
	}
	for _, bad := range []string{"-1s", "500ms", "2d"} {
		_, err := Parse([]byte(Example + "idle_peer_timeout: " + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), "idle_peer_timeout") {
			t.Errorf("idle_peer_timeout %s: err %v, want one naming the field", bad, err)
		}
	}
}
