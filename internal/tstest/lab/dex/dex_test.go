package dex

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

func TestUsersPasswordsMatchHashes(t *testing.T) {
	for _, u := range Users() {
		if err := bcrypt.CompareHashAndPassword([]byte(u.Hash), []byte(u.Password)); err != nil {
			t.Errorf("%s: password does not match its hash: %v", u.Name, err)
		}
	}
}

func TestRenderIsValidDexConfig(t *testing.T) {
	out, err := Config{DBFile: "/x/dex.db"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"issuer: " + Issuer, "file: /x/dex.db", "http: 192.0.2.10:5556", `idTokens: "1h0m0s"`, "- id: clearpath", "- id: other-app", "email: erin@example.com"} {
		if !strings.Contains(s, want) {
			t.Errorf("config lacks %q:\n%s", want, s)
		}
	}
	if _, err := (Config{Issuer: "ftp://x"}).Render(); err == nil {
		t.Error("bad issuer accepted")
	}
}

// idpLab is a two-node lab: idp (192.0.2.10, Dex) and a client node.
func idpLab(t *testing.T) (idp, client *lab.Node, bin string) {
	lab.SkipUnlessRoot(t)
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	l := lab.NewT(t, lab.Options{})
	idp, err = l.AddNode("idp")
	if err != nil {
		t.Fatal(err)
	}
	client, err = l.AddNode("client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Connect(lab.End{Node: idp, Addrs: []string{lab.IDPIP4 + "/24"}},
		lab.End{Node: client, Addrs: []string{"192.0.2.20/24"}}); err != nil {
		t.Fatal(err)
	}
	return idp, client, bin
}

func TestTokensCarryAudienceAndGroups(t *testing.T) {
	idp, client, bin := idpLab(t)
	ctx := context.Background()
	srv, err := Start(ctx, idp, "dex", bin, Config{DBFile: filepath.Join(idp.Lab().Dir, "dex.db")})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Login(ctx, ClientID, "erin")
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token although offline_access was asked for")
	}
	// The gateway accepts either token; both must say who and which groups.
	for name, jwt := range map[string]string{"id_token": tok.IDToken, "access_token": tok.AccessToken} {
		c, err := Claims(jwt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c["iss"] != Issuer || c["aud"] != ClientID || c["email"] != "erin@example.com" {
			t.Errorf("%s: iss=%v aud=%v email=%v", name, c["iss"], c["aud"], c["email"])
		}
		groups, _ := c["groups"].([]any)
		if !slices.Equal(groups, []any{"engineering", "ops"}) {
			t.Errorf("%s: groups=%v, want [engineering ops]", name, c["groups"])
		}
	}

	other, err := srv.Login(ctx, OtherClientID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := Claims(other.IDToken); c["aud"] != OtherClientID {
		t.Errorf("other-app token aud=%v", c["aud"])
	}
	dave, err := srv.Login(ctx, ClientID, "dave")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := Claims(dave.IDToken); c["groups"] != nil {
		t.Errorf("dave has groups %v", c["groups"])
	}
	if _, err := PasswordGrant(ctx, client.HTTPClient(5*time.Second), srv.TokenURL(), ClientID, "alice@example.com", "wrong", Scopes); err == nil {
		t.Error("wrong password accepted")
	}
}

// A second Dex on the same storage and issuer, with 2 s tokens, signs with
// the same keys: its tokens are genuine except for being expired, which is
// how the end-to-end tests get an expired token without test hooks.
func TestShortLivedTwinSignsWithSameKeys(t *testing.T) {
	idp, client, bin := idpLab(t)
	ctx := context.Background()
	db := filepath.Join(idp.Lab().Dir, "dex.db")
	main, err := Start(ctx, idp, "dex", bin, Config{DBFile: db})
	if err != nil {
		t.Fatal(err)
	}
	twin, err := Start(ctx, idp, "dex-short", bin, Config{DBFile: db, Listen: lab.IDPIP4 + ":5557", IDTokenTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := twin.Login(ctx, ClientID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	octx := oidc.ClientContext(ctx, client.HTTPClient(5*time.Second))
	prov, err := oidc.NewProvider(octx, main.Config.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	v := prov.Verifier(&oidc.Config{ClientID: ClientID})
	if _, err := v.Verify(octx, tok.IDToken); err != nil {
		t.Fatalf("fresh token of the twin rejected by the main issuer's keys: %v", err)
	}
	time.Sleep(3 * time.Second)
	_, err = v.Verify(octx, tok.IDToken)
	var exp *oidc.TokenExpiredError
	if !errors.As(err, &exp) {
		t.Fatalf("after 3 s: want a token-expired error, got %v", err)
	}
	// And nothing else is wrong with it.
	lax := prov.Verifier(&oidc.Config{ClientID: ClientID, SkipExpiryCheck: true})
	if _, err := lax.Verify(octx, tok.IDToken); err != nil {
		t.Errorf("expired token fails more than the expiry check: %v", err)
	}
}
