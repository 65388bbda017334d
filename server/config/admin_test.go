package config

import (
	"strings"
	"testing"
	"time"
)

func TestAdminPageDefaultsAndErrors(t *testing.T) {
	c, err := Parse([]byte(Example + "\nadmin_group: ops\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.AdminEnabled() || c.AdminListen != DefaultAdminListen || c.Admin.ClientID != c.OIDC.ClientID || c.Admin.SessionTTL != DefaultAdminSessionTTL {
		t.Errorf("defaults: enabled %v listen %q client %q ttl %v", c.AdminEnabled(), c.AdminListen, c.Admin.ClientID, c.Admin.SessionTTL)
	}
	if want := "http://" + DefaultAdminListen; c.TLS.Enabled() && c.Admin.URL != "https://"+DefaultAdminListen || !c.TLS.Enabled() && c.Admin.URL != want {
		t.Errorf("admin.url default %q (tls %v)", c.Admin.URL, c.TLS.Enabled())
	}
	if c, err := Parse([]byte(Example)); err != nil || c.AdminEnabled() {
		t.Errorf("without admin_group the page must be off (%v)", err)
	}
	if c, err := Parse([]byte(Example + "\nadmin_group: ops\nadmin_listen: \"off\"\n")); err != nil || c.AdminEnabled() {
		t.Errorf("admin_listen off: enabled %v (%v)", c != nil && c.AdminEnabled(), err)
	}
	for extra, want := range map[string]string{
		"admin_listen: 9443":                           "admin_listen:",
		"admin:\n  session_ttl: 1s":                    "admin.session_ttl:",
		"admin:\n  url: https://x.example/admin":       "admin.url:",
		"admin:\n  url: ftp://x.example":               "admin.url:",
		"admin_listen: 0.0.0.0:9443":                   "not a loopback address and there is no tls block",
		"admin:\n  url: https://127.0.0.1:9443":        "admin.url:",
		"admin:\n  session_ttl: " + time.Hour.String(): "",
	} {
		_, err := Parse([]byte(Example + "\nadmin_group: ops\n" + extra + "\n"))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", extra, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: error %v, want one naming %s", extra, err, want)
		}
	}
}
