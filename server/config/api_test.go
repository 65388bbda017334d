package config

import (
	"strings"
	"testing"
	"time"
)

func TestAPIDefaults(t *testing.T) {
	c, err := Parse([]byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	a := c.API
	if a.ReadHeaderTimeout != 5*time.Second || a.ReadTimeout != 15*time.Second || a.WriteTimeout != 30*time.Second || a.IdleTimeout != time.Minute ||
		a.MaxHeaderBytes != 16384 || a.MaxConnsPerSource != 64 || a.MaxConns != 8192 {
		t.Errorf("api defaults: %+v", a)
	}
	if r := a.UserRate(); r.Burst != 10 || r.Per != time.Minute || r.Interval() != 6*time.Second {
		t.Errorf("register_per_user: %+v", r)
	}
	if r := a.SourceRate(); r.Burst != 60 || r.Per != time.Minute {
		t.Errorf("register_per_source: %+v", r)
	}
	if c.MetricsAddr() != "127.0.0.1:9587" || c.MetricsToken != "" || len(c.TrustedProxies) != 0 {
		t.Errorf("metrics_listen %q (addr %q) token %q proxies %v", c.MetricsListen, c.MetricsAddr(), c.MetricsToken, c.TrustedProxies)
	}
}

// The commented block `vpn-gateway init` prints loads when uncommented.
func TestAPIExampleUncommented(t *testing.T) {
	doc := Example
	for _, l := range []string{"# metrics_listen:", "# trusted_proxies:", "# api:", "#   read_header_timeout:", "#   read_timeout:", "#   write_timeout:",
		"#   idle_timeout:", "#   max_header_bytes:", "#   max_conns_per_source:", "#   max_conns:", "#   register_per_user:", "#   register_per_source:"} {
		if !strings.Contains(doc, l) {
			t.Fatalf("example lacks %q", l)
		}
		doc = strings.Replace(doc, l, strings.Replace(l, "# ", "", 1), 1)
	}
	doc = strings.Replace(doc, "# metrics_token: <openssl rand -hex 32>", "metrics_token: 0123456789abcdef0123", 1)
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("uncommented api example: %v", err)
	}
	if c.TrustedProxies[0].String() != "10.0.0.0/24" || c.MetricsToken == "" || c.API.MaxConns != 8192 {
		t.Errorf("parsed: proxies %v token set %v api %+v", c.TrustedProxies, c.MetricsToken != "", c.API)
	}
}

func TestAPIErrorsNameTheField(t *testing.T) {
	cases := []struct{ add, want string }{
		{"api: {read_header_timeout: 1ms}", "api.read_header_timeout: 1ms is outside"},
		{"api: {read_timeout: 2s, read_header_timeout: 5s}", "api.read_timeout: 2s is shorter than api.read_header_timeout"},
		{"api: {write_timeout: 1h}", "api.write_timeout: 1h0m0s is outside"},
		{"api: {idle_timeout: -1s}", "api.idle_timeout:"},
		{"api: {max_header_bytes: 100}", "api.max_header_bytes: 100 is outside"},
		{"api: {max_conns_per_source: -1}", "api.max_conns_per_source: -1"},
		{"api: {max_conns: 10, max_conns_per_source: 64}", "api.max_conns: 10 is below api.max_conns_per_source"},
		{"api: {register_per_user: fast}", `api.register_per_user: "fast" is not N/DURATION`},
		{"api: {register_per_source: 0/1m}", `api.register_per_source: "0/1m": "0" is not a count`},
		{"api: {register_per_source: 5/1ms}", `"1ms" is not a duration from 1s to 24h`},
		{"trusted_proxies: [10.0.0.1/24]", "trusted_proxies[0]: 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)"},
		{"trusted_proxies: [0.0.0.0/0]", "trusted_proxies[0]: 0.0.0.0/0 trusts every address"},
		{"trusted_proxies: [nonsense]", "trusted_proxies"},
		{`metrics_listen: "9100"`, `metrics_listen: "9100" is not host:port or off`},
		{`metrics_listen: ":8080"`, `metrics_listen: ":8080" is the API's listen address; set metrics_listen: off and metrics_token`},
		{"metrics_token: short", "metrics_token: must be at least 16 characters"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(Example + c.add + "\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.add, err, c.want)
		}
	}
	c, err := Parse([]byte(Example + "metrics_listen: off\napi: {register_per_user: \"off\"}\n"))
	if err != nil || c.MetricsAddr() != "" || !c.API.UserRate().Off() {
		t.Errorf("off: %v, addr %q, user rate %+v", err, c.MetricsAddr(), c.API.UserRate())
	}
}
