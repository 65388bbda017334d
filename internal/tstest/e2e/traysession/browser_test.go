//go:build linux

package traysession

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testbrowser"
)

// startBrowser runs a real headless Chromium inside node: the user's
// browser on the laptop, which must reach the identity provider and the
// tray's loopback redirect there. chromedp talks to it over a pipe
// (--remote-debugging-pipe), which `ip netns exec` passes through.
func startBrowser(t *testing.T, node *lab.Node) context.Context {
	t.Helper()
	testbrowser.Require(t)
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
	script := "#!/bin/sh\nexport TMPDIR=" + tmp + "\nexec ip netns exec " + node.NS + " " + testbrowser.Path + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return testbrowser.New(t, wrapper, filepath.Join(dir, "profile"))
}
