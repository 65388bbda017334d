//go:build linux

package traysession

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clearpath-vpn/clearpath/internal/lab"
)

const chromiumPath = "/usr/bin/chromium"

// startBrowser runs a real headless Chromium inside node: the user's
// browser on the laptop, which must reach the identity provider and the
// tray's loopback redirect there. chromedp talks to it over a pipe
// (--remote-debugging-pipe), which `ip netns exec` passes through.
func startBrowser(t *testing.T, node *lab.Node) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is needed in CI (make deps)")
		}
		t.Skip("chromium not installed (make deps)")
	}
	dir := filepath.Join(node.Lab().Dir, "chromium")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "chromium-in-"+node.Name)
	// Chromium's temporary files (shared memory without /dev/shm) go to the
	// lab's directory, which the lab removes.
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nexport TMPDIR=" + tmp + "\nexec ip netns exec " + node.NS + " " + chromiumPath + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(wrapper), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// dexLogin logs in on Dex's password form, as a person would.
func dexLogin(user, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit-login")),
	)
}
