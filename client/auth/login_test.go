package auth

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testbrowser"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/gateway"
)

// provider is a real Dex on loopback and a gateway discovery endpoint
// pointing at it (the gateway's own handler).
type provider struct {
	issuer, server string
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func dexBinary(t *testing.T) string {
	bin, err := dex.Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Dex is needed in CI: %v (make dex)", err)
		}
		t.Skipf("Dex not built: %v (make dex)", err)
	}
	return bin
}

// startProvider runs Dex with tokens valid for idTTL.
func startProvider(t *testing.T, idTTL string) *provider {
	t.Helper()
	return startProviderWith(t, idTTL, "5m")
}

// startProviderWith also sets how long a device code stays valid.
func startProviderWith(t *testing.T, idTTL, deviceTTL string) *provider {
	t.Helper()
	bin := dexBinary(t)
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d/dex", port)
	var users strings.Builder
	for _, u := range dex.Users() {
		fmt.Fprintf(&users, "  - {email: %s, username: %s, userID: %q, hash: %q, groups: [%s]}\n", u.Email, u.Name, u.ID, u.Hash, strings.Join(u.Groups, ", "))
	}
	cfg := fmt.Sprintf(`issuer: %s
storage: {type: memory}
web: {http: 127.0.0.1:%d}
expiry: {idTokens: %q, deviceRequests: %q}
oauth2: {skipApprovalScreen: true, passwordConnector: local, responseTypes: [code],
  grantTypes: [authorization_code, refresh_token, password, "urn:ietf:params:oauth:grant-type:device_code"]}
enablePasswordDB: true
staticClients:
  - {id: clearpath, name: ClearPath, public: true}
  - {id: other-app, name: Other, public: true}
staticPasswords:
%s`, issuer, port, idTTL, deviceTTL, users.String())
	dir := t.TempDir()
	path := filepath.Join(dir, "dex.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	logf, _ := os.Create(filepath.Join(dir, "dex.log"))
	cmd := exec.Command(bin, "serve", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("dex log:\n%s", b)
		}
	})
	for i := 0; ; i++ {
		resp, err := http.Get(issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			t.Fatalf("dex did not start: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/vpn", gateway.DiscoveryHandler(config.OIDC{Issuer: issuer, ClientID: "clearpath"}))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &provider{issuer: issuer, server: "http://" + ln.Addr().String()}
}

// newBrowser is a real headless Chromium.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	testbrowser.Require(t)
	return testbrowser.New(t, testbrowser.Path, t.TempDir())
}

var vpnBin string

func buildVPN(t *testing.T) string {
	t.Helper()
	if vpnBin != "" {
		return vpnBin
	}
	dir, err := os.MkdirTemp("", "clearpath-auth-test-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", dir+"/vpn", "github.com/clearpath-vpn/clearpath/cmd/vpn").CombinedOutput()
	if err != nil {
		t.Fatalf("build vpn: %v\n%s", err, out)
	}
	vpnBin = dir + "/vpn"
	return vpnBin
}

// TestBrowserLoginThroughTheBinary runs the real `vpn login`: pkg/browser
// finds our xdg-open on PATH, which hands the URL to a real headless
// Chromium that logs in on Dex; the binary gets the code on its loopback
// redirect, verifies the tokens and caches them.
func TestBrowserLoginThroughTheBinary(t *testing.T) {
	p := startProvider(t, "10m")
	bctx := newBrowser(t)
	vpn := buildVPN(t)
	dir := t.TempDir()
	urls := filepath.Join(dir, "opened-urls")
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\necho \"$1\" >> "+urls+"\n"), 0o755)
	cfgDir := filepath.Join(dir, "config")

	start := time.Now()
	cmd := exec.Command(vpn, "login", "--server", p.server)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DISPLAY=:99", "CLEARPATH_CONFIG_DIR="+cfgDir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var loginURL string
	for i := 0; loginURL == ""; i++ {
		if b, _ := os.ReadFile(urls); len(b) > 0 {
			loginURL = strings.TrimSpace(string(b))
		}
		if i > 200 {
			cmd.Process.Kill()
			t.Fatalf("the browser was never opened:\n%s", out.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	u, _ := url.Parse(loginURL)
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" ||
		!strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
		t.Fatalf("the login URL lacks PKCE S256, state, nonce or a loopback redirect: %s", loginURL)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(loginURL), testbrowser.DexLogin("alice@example.com", "alice-password"),
		chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatalf("browser: %v", err)
	}
	page, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("vpn login: %v\n%s", err, out.String())
	}
	took := time.Since(start)
	if !strings.Contains(page, "You can close this tab") {
		t.Errorf("the browser showed %q", page)
	}
	if !strings.Contains(out.String(), "Logged in to "+p.server+" as alice@example.com") {
		t.Errorf("vpn login said:\n%s", out.String())
	}
	checkCache(t, cfgDir, p.server, "alice@example.com")
	t.Logf("browser login through the binary took %v", took.Round(time.Millisecond))
	fmt.Printf("login-browser-ms %d\n", took.Milliseconds())
}

func checkCache(t *testing.T, cfgDir, server, email string) {
	t.Helper()
	c := &Cache{Dir: cfgDir}
	tok, err := c.Load(server)
	if err != nil || tok == nil || tok.Email != email || tok.RefreshToken == "" || len(tok.Groups) == 0 {
		t.Fatalf("cached tokens: %+v %v", tok, err)
	}
	for path, want := range map[string]os.FileMode{cfgDir: 0o700, filepath.Dir(c.path(server)): 0o700, c.path(server): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
}

// TestDeviceLoginThroughTheBinary runs `vpn login --device`; Chromium plays
// the phone: it opens the printed URL, enters the printed code and logs in.
func TestDeviceLoginThroughTheBinary(t *testing.T) {
	p := startProvider(t, "10m")
	bctx := newBrowser(t)
	vpn := buildVPN(t)
	cfgDir := filepath.Join(t.TempDir(), "config")
	start := time.Now()
	cmd := exec.Command(vpn, "login", "--server", p.server, "--device")
	cmd.Env = append(os.Environ(), "CLEARPATH_CONFIG_DIR="+cfgDir)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	var verifyURL, code string
	for sc.Scan() && (verifyURL == "" || code == "") {
		line := strings.TrimSpace(sc.Text())
		lines = append(lines, line)
		if strings.HasPrefix(line, "http") && verifyURL == "" {
			verifyURL = line
		} else if regexp.MustCompile(`^[A-Z0-9]{4}-[A-Z0-9]{4}$`).MatchString(line) {
			code = line
		}
	}
	if verifyURL == "" || code == "" {
		cmd.Process.Kill()
		t.Fatalf("no URL and code printed:\n%s", strings.Join(lines, "\n"))
	}
	rest := make(chan string)
	go func() { b, _ := io.ReadAll(stdout); rest <- string(b) }()
	if err := chromedp.Do(bctx, chromedp.Navigate(verifyURL),
		chromedp.WaitVisible(chromedp.CSS(`input[name=user_code]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=user_code]`), code),
		chromedp.Submit(chromedp.CSS(`input[name=user_code]`)),
		testbrowser.DexLogin("bob@example.com", "bob-password"),
		chromedp.WaitVisible(chromedp.CSS(`body`))); err != nil {
		cmd.Process.Kill()
		t.Fatalf("browser: %v", err)
	}
	// Wait closes the pipe: read to the end first, or the tail is lost.
	tail := <-rest
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("vpn login --device: %v\n%s%s", err, strings.Join(lines, "\n"), tail)
	}
	took := time.Since(start)
	if !strings.Contains(tail, "as bob@example.com") {
		t.Errorf("vpn login --device said:\n%s", tail)
	}
	checkCache(t, cfgDir, p.server, "bob@example.com")
	t.Logf("device login through the binary took %v", took.Round(time.Millisecond))
	fmt.Printf("login-device-ms %d\n", took.Milliseconds())
}

// A device code nobody approves: vpn login gives up when the provider's
// code expires, says so plainly, and caches nothing.
func TestDeviceLoginGivesUpAtExpiry(t *testing.T) {
	p := startProviderWith(t, "10m", "3s")
	vpn := buildVPN(t)
	cfgDir := filepath.Join(t.TempDir(), "config")
	cmd := exec.Command(vpn, "login", "--server", p.server, "--device")
	cmd.Env = append(os.Environ(), "CLEARPATH_CONFIG_DIR="+cfgDir)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("vpn login --device succeeded without approval:\n%s", out)
	}
	if !strings.Contains(string(out), "the login code expired before it was approved") {
		t.Errorf("vpn login --device must say the code expired:\n%s", out)
	}
	if took > 15*time.Second {
		t.Errorf("vpn login --device gave up after %v, the code expired after 3s", took)
	}
	if entries, _ := os.ReadDir(cfgDir); len(entries) > 0 {
		var names []string
		filepath.WalkDir(cfgDir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				names = append(names, path)
			}
			return nil
		})
		if len(names) > 0 {
			t.Errorf("a failed login cached %v", names)
		}
	}
}

// --login-timeout bounds the device flow too, with its own message.
func TestDeviceLoginHonoursTheLoginTimeout(t *testing.T) {
	p := startProvider(t, "10m")
	vpn := buildVPN(t)
	cmd := exec.Command(vpn, "login", "--server", p.server, "--device", "--login-timeout", "2s")
	cmd.Env = append(os.Environ(), "CLEARPATH_CONFIG_DIR="+filepath.Join(t.TempDir(), "config"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err == nil || !strings.Contains(string(out), "gave up waiting for the login to be approved") {
		t.Fatalf("vpn login --device --login-timeout 2s: %v\n%s", err, out)
	}
	if took > 10*time.Second {
		t.Errorf("gave up after %v with a 2s login timeout", took)
	}
}

func TestCanOpenBrowser(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		goos string
		env  func(string) string
		want bool
	}{
		{"linux", env("DISPLAY", ":0"), true},
		{"linux", env("WAYLAND_DISPLAY", "wayland-0"), true},
		{"linux", env(), false},
		{"linux", env("SSH_CONNECTION", "1 2 3 4"), false},
		{"linux", env("SSH_CONNECTION", "1 2 3 4", "DISPLAY", "localhost:10"), true}, // X forwarding
		{"darwin", env(), true},
		{"darwin", env("SSH_TTY", "/dev/ttys001"), false},
	}
	for i, c := range cases {
		if got := CanOpenBrowser(c.goos, c.env); got != c.want {
			t.Errorf("case %d: CanOpenBrowser(%s) = %v", i, c.goos, got)
		}
	}
}
