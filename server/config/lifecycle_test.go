package config

import (
	"strings"
	"testing"
	"time"
)

const opsExample = `
lifecycle:
  warn_before: [24h, 1h]
  unused_after: 12h
  idle_after: 0s
  store_poll: 500ms
  webhook:
    url: https://hooks.example.com/clearpath
    secret: s3cret
    max_attempts: 3
admin_socket: /run/clearpath/admin.sock
metrics_listen: "127.0.0.1:9108"
`

func TestLifecycleSettingsLoad(t *testing.T) {
	c, err := Parse([]byte(Example + opsExample))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Lifecycle
	if len(l.WarnBefore) != 2 || l.WarnBefore[1] != time.Hour || l.Unused() != 12*time.Hour || l.Idle() != 0 || l.StorePoll != 500*time.Millisecond {
		t.Errorf("lifecycle = %+v", l)
	}
	if l.Webhook.MaxAttempts != 3 || l.Webhook.Timeout != DefaultWebhookTimeout || l.Webhook.Backoff != DefaultWebhookBackoff {
		t.Errorf("webhook defaults not applied: %+v", l.Webhook)
	}
	if c.AdminSocket != "/run/clearpath/admin.sock" || c.MetricsListen != "127.0.0.1:9108" {
		t.Errorf("admin_socket %q metrics_listen %q", c.AdminSocket, c.MetricsListen)
	}
}

func TestLifecycleDefaults(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(Example, "key_ttl: 720h", "key_ttl: 48h", 1)))
	if err != nil {
		t.Fatal(err)
	}
	// 72h would precede the key's own registration: only 24h is kept.
	if len(c.Lifecycle.WarnBefore) != 1 || c.Lifecycle.WarnBefore[0] != 24*time.Hour {
		t.Errorf("default warn_before for a 48h TTL = %v, want [24h]", c.Lifecycle.WarnBefore)
	}
	if c.Lifecycle.Unused() != DefaultUnusedAfter || c.Lifecycle.Idle() != DefaultIdleAfter || c.Lifecycle.StorePoll != time.Second {
		t.Errorf("defaults: %+v", c.Lifecycle)
	}
	if c.AdminSocket != "/var/lib/clearpath-gateway/admin.sock" {
		t.Errorf("admin socket default %q", c.AdminSocket)
	}
	c, err = Parse([]byte(strings.Replace(Example, "key_ttl: 720h", "key_ttl: 15s", 1)))
	if err != nil {
		t.Fatalf("a 15s key_ttl is allowed (tests use it): %v", err)
	}
	if len(c.Lifecycle.WarnBefore) != 0 {
		t.Errorf("warn_before for 15s = %v", c.Lifecycle.WarnBefore)
	}
}

func TestLifecycleErrorsNameTheField(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{"warn_before: [24h, 1h]", "warn_before: [24h, 0s]", "lifecycle.warn_before[1]: 0s must be a positive"},
		{"warn_before: [24h, 1h]", "warn_before: [24h, 800h]", "lifecycle.warn_before[1]: 800h0m0s is not shorter than key_ttl"},
		{"warn_before: [24h, 1h]", "warn_before: [1h, 1h]", "lifecycle.warn_before[1]: 1h0m0s repeats lifecycle.warn_before[0]"},
		{"unused_after: 12h", "unused_after: -1h", "lifecycle.unused_after: -1h0m0s is negative"},
		{"idle_after: 0s", "idle_after: -5m", "lifecycle.idle_after:"},
		{"store_poll: 500ms", "store_poll: 1ms", "lifecycle.store_poll: 1ms is outside"},
		{"url: https://hooks.example.com/clearpath", "url: hooks.example.com", "lifecycle.webhook.url:"},
		{"max_attempts: 3", "max_attempts: -2", "lifecycle.webhook.max_attempts: -2"},
		{"admin_socket: /run/clearpath/admin.sock", "admin_socket: admin.sock", "admin_socket: \"admin.sock\" must be an absolute path"},
		{`metrics_listen: "127.0.0.1:9108"`, `metrics_listen: "9108"`, "metrics_listen:"},
		{`metrics_listen: "127.0.0.1:9108"`, `metrics_listen: ":8080"`, "metrics_listen: \":8080\" is the API's listen address"},
	}
	doc := Example + opsExample
	for _, c := range cases {
		if !strings.Contains(doc, c.from) {
			t.Fatalf("case does not match: %q", c.from)
		}
		_, err := Parse([]byte(strings.Replace(doc, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: error %v, want it to contain %q", c.from, c.to, err, c.want)
		}
	}
}

func TestProbeMustBeInsideAllow(t *testing.T) {
	good := strings.Replace(Example, `allow: [10.10.0.0/16, "fd10:10::/64"]`, `allow: [10.10.0.0/16, "fd10:10::/64"]
    probe: [10.10.0.10, "fd10:10::10"]`, 1)
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Networks[0].Probe) != 2 {
		t.Errorf("probe = %v", c.Networks[0].Probe)
	}
	bad := strings.Replace(good, "probe: [10.10.0.10,", "probe: [10.20.0.10,", 1)
	if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "networks[0].probe[0]: 10.20.0.10 is outside") {
		t.Errorf("probe outside allow: %v", err)
	}
}

// Values that do not even parse are named by their field and line, not
// only by a line number.
func TestParseErrorsNameTheField(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{"key_ttl: 720h", "key_ttl: banana", "key_ttl (line "},
		{"listen_port: 51821", "listen_port: abc", "networks[1].listen_port (line "},
		{"pool: [100.65.0.0/24", "pool: [100.65.0.0/33", "networks[1].pool[0] (line "},
		{"allow: [10.10.0.0/16", "allow: [10.10.0.0/16x", "networks[0].allow[0] (line "},
		{"    listen_port: 51821", "    listen_port: 51821\n    listen_prot: 3", "networks[1].listen_prot (line "},
	}
	for _, c := range cases {
		if !strings.Contains(Example, c.from) {
			t.Fatalf("case does not match: %q", c.from)
		}
		_, err := Parse([]byte(strings.Replace(Example, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: error %v, want it to contain %q", c.from, c.to, err, c.want)
		}
	}
}

func FuzzParseOps(f *testing.F) {
	f.Add([]byte(Example + opsExample))
	f.Add([]byte(Example + "lifecycle: {warn_before: [1s, -1s]}\n"))
	f.Add([]byte("lifecycle: [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, d := range c.Lifecycle.WarnBefore {
			if d <= 0 || d >= c.KeyTTL {
				t.Fatalf("accepted warn_before %s with key_ttl %s", d, c.KeyTTL)
			}
		}
		if c.Lifecycle.StorePoll < 100*time.Millisecond || c.AdminSocket == "" {
			t.Fatalf("accepted %+v", c.Lifecycle)
		}
	})
}
