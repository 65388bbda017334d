package tray

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/auth"
)

func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + ".sig"
}

func TestFileTokens(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tok")
	ctx := context.Background()
	ft := FileTokens{Path: p}
	if st := ft.State(ctx, ""); st.LoggedIn || st.Supported {
		t.Fatalf("missing file: %+v", st)
	}
	if _, err := ft.Token(ctx, ""); err == nil || !strings.Contains(err.Error(), "token file") {
		t.Fatalf("missing file: %v", err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok := jwt(`{"sub":"u1","email":"bob@example.com","exp":` + strconv.FormatInt(exp.Unix(), 10) + `}`)
	os.WriteFile(p, []byte("\n  "+tok+"  \n"), 0o600)
	if st := ft.State(ctx, ""); !st.LoggedIn || st.Who != "bob@example.com" || !st.Expiry.Equal(exp) {
		t.Fatalf("state %+v", st)
	}
	if got, err := ft.Token(ctx, ""); err != nil || got != tok {
		t.Fatalf("token %q %v", got, err)
	}
	os.WriteFile(p, []byte(jwt(`{"sub":"u1","exp":1000}`)), 0o600)
	if _, err := ft.Token(ctx, ""); !errors.Is(err, ErrLoginRequired) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	os.WriteFile(p, []byte("one two"), 0o600)
	if _, err := ft.Token(ctx, ""); err == nil || !strings.Contains(err.Error(), "more than one token") {
		t.Fatalf("two tokens: %v", err)
	}
	if err := ft.Login(ctx, ""); !errors.Is(err, ErrNoInteractiveLogin) {
		t.Fatalf("login: %v", err)
	}
}

func TestPeekClaimsIgnoresGarbage(t *testing.T) {
	for _, s := range []string{"", "a.b", "a.!!!.c", jwt("not json"), "opaque-access-token"} {
		if c := PeekClaims(s); c != (Claims{}) {
			t.Errorf("%q gave %+v", s, c)
		}
	}
	if c := PeekClaims(jwt(`{"sub":"s","name":"N"}`)); c.Who() != "N" || !c.Expiry().IsZero() {
		t.Errorf("claims %+v", c)
	}
}

// AuthTokens reads the same cache `vpn login` writes.
func TestAuthTokensUsesTheLoginCache(t *testing.T) {
	cache := &auth.Cache{Dir: t.TempDir()}
	a := AuthTokens{Cache: cache}
	ctx := context.Background()
	// Loopback, port 9: revocation is attempted and refused at once.
	const server = "http://127.0.0.1:9"
	if st := a.State(ctx, server); !st.Supported || st.LoggedIn {
		t.Fatalf("empty cache: %+v", st)
	}
	if _, err := a.Token(ctx, server); !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("empty cache: %v", err)
	}
	exp := time.Now().Add(time.Hour)
	if err := cache.Save(&auth.Tokens{Server: server, IDToken: "id-tok", Expiry: exp, Email: "carol@example.com"}); err != nil {
		t.Fatal(err)
	}
	if st := a.State(ctx, server); !st.LoggedIn || st.Who != "carol@example.com" {
		t.Fatalf("cached: %+v", st)
	}
	if tok, err := a.Token(ctx, server); err != nil || tok != "id-tok" {
		t.Fatalf("token %q %v", tok, err)
	}
	// Expired with no refresh token: log in again, no network attempted.
	cache.Save(&auth.Tokens{Server: server, IDToken: "old", Expiry: time.Now().Add(-time.Minute)})
	if st := a.State(ctx, server); st.LoggedIn {
		t.Fatalf("expired, no refresh token: %+v", st)
	}
	if _, err := a.Token(ctx, server); !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("expired: %v", err)
	}
	if err := a.Logout(ctx, server); err != nil {
		t.Fatal(err)
	}
	if tk, _ := cache.Load(server); tk != nil {
		t.Fatalf("logout left %+v", tk)
	}
}
