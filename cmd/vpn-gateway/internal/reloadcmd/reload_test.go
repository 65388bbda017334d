package reloadcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

func writeConfig(t *testing.T) (path, sock string) {
	t.Helper()
	dir := t.TempDir()
	sock = filepath.Join(dir, "admin.sock")
	path = filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte(config.Example+"\nadmin_socket: "+sock+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, sock
}

// reload --json prints what the gateway did in the one JSON shape (lists
// [] when empty); without a gateway the error says how to start one.
func TestReloadJSON(t *testing.T) {
	path, sock := writeConfig(t)
	var out bytes.Buffer
	io := cmdutil.Test(&out, &out)
	err := Run(context.Background(), &Options{IO: io, ConfigPath: path, JSON: true})
	if err == nil || !strings.Contains(err.Error(), "no gateway answers on "+sock+": start it (systemctl start clearpath-gateway") {
		t.Fatalf("reload without a gateway: %v", err)
	}

	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			w.Write([]byte(`{"networks":[],"config_path":"` + path + `"}`))
		case "/v1/reload":
			w.Write([]byte(`{"changes":[{"network":"ops","op":"add","details":["interface wg-ops"]}],"took":"12ms"}`))
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	if err := Run(context.Background(), &Options{IO: io, ConfigPath: path, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got["schema"] != "clearpath.reload/v1" || got["summary"] != "add ops interface wg-ops" || !strings.Contains(out.String(), `"settings": []`) {
		t.Errorf("reload --json:\n%s", out.String())
	}
	out.Reset()
	if err := Run(context.Background(), &Options{IO: io, ConfigPath: path, JSON: false}); err != nil || out.String() != "Reloaded in 12ms: add ops interface wg-ops\n" {
		t.Errorf("reload: %v %q", err, out.String())
	}
}

// --config (before or after the command) and --json reach the run hook.
func TestReloadOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(nil, nil)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"--config", "/tmp/gw.yaml", "reload", "--json"})
	if err := root.Execute(); err != nil || got.ConfigPath != "/tmp/gw.yaml" || !got.JSON {
		t.Fatalf("reload: %v %+v", err, got)
	}
}
