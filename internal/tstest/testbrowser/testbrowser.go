// Package testbrowser drives a real headless Chromium (Debian's) for the
// tests that log in as a person would: the login tests and the tray's
// desktop session.
package testbrowser

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path is where Debian's chromium package puts the browser.
const Path = "/usr/bin/chromium"

// Require skips the test when Chromium is missing, and fails it in CI,
// where `make deps` installs it.
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is needed in CI (make deps)")
		}
		t.Skip("chromium not installed (make deps)")
	}
}

// New starts the browser at execPath (Path, or a wrapper around it) with a
// fresh profile in userDataDir, headless and without the background
// traffic of a desktop browser, and returns a context that drives it for
// at most 60 s; the browser stops when the test ends.
func New(t testing.TB, execPath, userDataDir string) context.Context {
	t.Helper()
	return NewWithin(t, execPath, userDataDir, 60*time.Second)
}

// NewWithin is New with a time bound of its own and extra browser flags.
func NewWithin(t testing.TB, execPath, userDataDir string, within time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(execPath), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.UserDataDir(userDataDir))
	opts = append(opts, extra...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, within)
	t.Cleanup(cancel3)
	return ctx
}

// DexLogin logs in on Dex's password form, as a person would.
func DexLogin(user, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit-login")),
	)
}
