package login

import (
	"bytes"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
)

// `vpn logout` with no login ever made says so and succeeds (it used to
// demand --server).
func TestLogoutWithoutLogin(t *testing.T) {
	t.Setenv("CLEARPATH_CONFIG_DIR", t.TempDir())
	var out bytes.Buffer
	cmd := NewLogoutCmd(factory.ForTest("", &out, &out), nil)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil || out.String() != "Not logged in: there is nothing to log out of.\n" {
		t.Errorf("vpn logout: %v %q", err, out.String())
	}
}
