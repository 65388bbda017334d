package healthcmd

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
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
		f := &cmdutil.Factory{IOStreams: cmdutil.Test(&out, &out)}
		root := cmdutil.TestRoot(f, NewCmd(f, nil))
		root.SetArgs([]string{"health", "--url", url, "--timeout", "2s"})
		code := cmdutil.Execute(root, "vpn-gateway", &out, nil)
		return out.String(), code
	}
	if out, code := run(srv.URL + "/healthz"); code != 0 || !strings.Contains(out, `"status":"ok"`) {
		t.Errorf("healthy gateway: exit %d, %q", code, out)
	}
	status = http.StatusServiceUnavailable
	if out, code := run(srv.URL + "/healthz"); code != 1 || !strings.Contains(out, "vpn-gateway: gateway at "+srv.URL+"/healthz is unhealthy: 503") {
		t.Errorf("503: exit %d, %q; want 1 naming the status", code, out)
	}
	srv.Close()
	if out, code := run(srv.URL + "/healthz"); code != 1 || !strings.Contains(out, "nothing answers at "+strings.TrimSuffix(srv.URL, "/")) {
		t.Errorf("nothing listening: exit %d, %q; want a failure naming the URL", code, out)
	}
}

// The flags reach the run hook; a non-positive --timeout is refused by Run.
func TestHealthOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"health", "--url", "https://gw:8443/healthz", "--timeout", "3s"})
	if err := root.Execute(); err != nil || got.URL != "https://gw:8443/healthz" || got.Timeout != 3*time.Second {
		t.Fatalf("health: %v %+v", err, got)
	}
	root = cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"health"})
	if err := root.Execute(); err != nil || !strings.HasSuffix(got.URL, "/healthz") || got.Timeout != 5*time.Second {
		t.Fatalf("health defaults: %v %+v", err, got)
	}
	if err := Run(context.Background(), &Options{URL: "http://127.0.0.1:1/healthz"}); err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Errorf("zero timeout: %v", err)
	}
}
