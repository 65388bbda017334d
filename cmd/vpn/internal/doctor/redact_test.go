package doctor

import (
	"strings"
	"testing"
)

// WireGuard keys are redacted wherever they stand, whatever their first
// character: one in 32 keys starts with '+' or '/', which \b does not
// see as the start of a word (a CI run once bundled such a key).
func TestRedactWireGuardKeys(t *testing.T) {
	for _, key := range []string{
		"/KOk1xEMkZuvBby6fuTxt6wAjrMc0b/sa6+t8sexmQc=",
		"+KOk1xEMkZuvBby6fuTxt6wAjrMc0b/sa6+t8sexmQc=",
		"aKOk1xEMkZuvBby6fuTxt6wAjrMc0b/sa6+t8sexmQc=",
	} {
		for _, in := range []string{
			key,
			`{"public_key":"` + key + `"}`,
			"peer " + key + " endpoint",
			"keys=" + key + "," + key,
		} {
			out := newRedactor().String(in)
			if strings.Contains(out, key) || !strings.Contains(out, "[key]") {
				t.Errorf("redact(%q) = %q, want the key replaced by [key]", in, out)
			}
		}
	}
	// Base64 that only contains a key-shaped run is not a key: kept.
	long := "QUJD" + "KOk1xEMkZuvBby6fuTxt6wAjrMc0b/sa6+t8sexmQc="
	if out := newRedactor().String(long); out != long {
		t.Errorf("redact(%q) = %q, want it unchanged", long, out)
	}
}
