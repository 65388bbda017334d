package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// `vpn-gateway health` exits 0 on a 200 from /healthz and 1 on a 503 or
// when nothing listens: what a container HEALTHCHECK needs.
func TestHealth(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	run := func(url string) (string, int) {
		var out bytes.Buffer
		root := newRoot(&out)
		root.SetErr(&out)
		root.SetArgs([]string{"health", "--url", url, "--timeout", "2s"})
		err := root.Execute()
		var ec interface{ ExitCode() int }
		switch {
		case err == nil:
			return out.String(), 0
		case errors.As(err, &ec):
			return out.String(), ec.ExitCode()
		default:
			return out.String() + err.Error(), -1
		}
	}
	if out, code := run(srv.URL + "/healthz"); code != 0 || !strings.Contains(out, `"status":"ok"`) {
		t.Errorf("healthy gateway: exit %d, %q", code, out)
	}
	status = http.StatusServiceUnavailable
	if out, code := run(srv.URL + "/healthz"); code != 1 || !strings.Contains(out, "unhealthy: 503") {
		t.Errorf("503: exit %d, %q; want 1 naming the status", code, out)
	}
	srv.Close()
	if out, code := run(srv.URL + "/healthz"); code == 0 || !strings.Contains(out, "gateway health at") {
		t.Errorf("nothing listening: exit %d, %q; want a failure naming the URL", code, out)
	}
}

// --help lists the environment variables under their CLEARPATH_ names.
func TestHelpListsEnvironment(t *testing.T) {
	out, code := runGW(t, "--help")
	if code != 0 || !strings.Contains(out, "CLEARPATH_WG_INFLIGHT") || !strings.Contains(out, "CLEARPATH_DEBUG") || !strings.Contains(out, "old VPN_ names are still read") {
		t.Errorf("vpn-gateway --help (exit %d):\n%s", code, out)
	}
}
