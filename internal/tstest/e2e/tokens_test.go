package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// register calls POST /api/v1/peers from the laptop, as the client does:
// a fresh device key, the body sealed with it to the eng network's key and
// bound to the token's (unverified) subject. It returns the status and
// error body.
func register(t *testing.T, e *env, token string) (int, api.Error, []byte) {
	t.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	subject := ""
	if c, err := dex.Claims(token); err == nil {
		subject, _ = c["sub"].(string)
	}
	req := sealFor(t, e.networkKey(t, e.EngIface), api.RegisterClaims{Subject: subject, Network: "eng", DeviceID: "laptop-1", Hostname: "laptop", OS: "linux"}, key)
	req.Network = ""
	code, apiErr, raw, _ := postRegistration(t, e.Laptop.HTTPClient(10*time.Second), stack.ServerURL, token, req)
	return code, apiErr, raw
}

// tamper changes one character in the middle of the JWT's signature.
func tamper(jwt string) string {
	i := strings.LastIndexByte(jwt, '.') + 20
	c := byte('A')
	if jwt[i] == 'A' {
		c = 'B'
	}
	return jwt[:i] + string(c) + jwt[i+1:]
}

// forge re-signs a genuine token's header and claims with a key the
// provider never had.
func forge(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signed := parts[0] + "." + parts[1]
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Tokens that are expired, for another audience, tampered, forged or from
// another issuer get 401 and create no peer; a user in no configured group
// gets 403.
func TestBadTokensAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)

	// Same storage and issuer, 2 s tokens: genuinely signed, just expired
	// by the time we use them.
	short, err := dex.Start(ctx, e.IDP, "dex-short", e.Bin.Dex, dex.Config{
		DBFile: filepath.Join(e.Dir, "dex.db"), Listen: lab.IDPIP4 + ":5557", IDTokenTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A different provider altogether (own issuer, own keys).
	stranger, err := dex.Start(ctx, e.IDP, "dex-stranger", e.Bin.Dex, dex.Config{
		Issuer: "http://" + lab.IDPIP4 + ":5558/dex"})
	if err != nil {
		t.Fatal(err)
	}
	login := func(s *dex.Server, client, user string) string {
		tok, err := s.Login(ctx, client, user)
		if err != nil {
			t.Fatal(err)
		}
		return tok.IDToken
	}
	expiring := login(short, dex.ClientID, "alice")
	expiringAt := time.Now().Add(2 * time.Second)
	good := login(e.Dex, dex.ClientID, "alice")
	wrongAud := login(e.Dex, dex.OtherClientID, "alice")
	foreign := login(stranger, dex.ClientID, "alice")
	dave := login(e.Dex, dex.ClientID, "dave")

	peersBefore := e.allPeers(t)
	if len(peersBefore) != 0 {
		t.Fatalf("fresh gateway already has peers %v", peersBefore)
	}
	time.Sleep(time.Until(expiringAt) + time.Second)

	for _, tc := range []struct {
		name, token string
		// The message must name the failed check, so the user knows
		// what to fix.
		says string
	}{
		{"expired", expiring, "expired"},
		{"wrong audience (other-app)", wrongAud, "audience"},
		{"tampered signature", tamper(good), "signature"},
		{"signed by a foreign key", forge(t, good), "signature"},
		{"other issuer", foreign, "issuer"},
		{"not a JWT", "not-a-token", ""},
		{"no token", "", ""},
	} {
		code, apiErr, raw := register(t, e, tc.token)
		switch {
		case code != http.StatusUnauthorized || apiErr.Error != api.ErrInvalidToken:
			t.Errorf("%s: got %d %s, want 401 %s", tc.name, code, raw, api.ErrInvalidToken)
		case !strings.Contains(strings.ToLower(apiErr.Message), tc.says):
			t.Errorf("%s: 401 but the message %q does not say %q", tc.name, apiErr.Message, tc.says)
		default:
			t.Logf("%s: 401 %s", tc.name, apiErr.Message)
		}
	}
	code, apiErr, raw := register(t, e, dave)
	if code != http.StatusForbidden || apiErr.Error != api.ErrForbidden {
		t.Errorf("dave (no group): got %d %s, want 403 %s", code, raw, api.ErrForbidden)
	}
	if after := e.allPeers(t); !slices.Equal(after, peersBefore) {
		t.Errorf("refused registrations created peers: %v", after)
	}

	// Through the CLI as a user would: `vpn up` with the expired token
	// fails, says why, and leaves the laptop as it was.
	routesBefore, err := e.Laptop.RoutingState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice := e.Client("alice")
	expiredFile, err := e.WriteToken("expired", expiring)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := alice.Up(ctx, expiredFile)
	if err == nil {
		t.Errorf("vpn up with an expired token succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "expired") && !strings.Contains(out, "401") {
		t.Errorf("vpn up failed without saying the token expired or was refused:\n%s", out)
	} else {
		t.Logf("vpn up with an expired token: %v\n%s", err, out)
	}
	if routesAfter, _ := e.Laptop.RoutingState(ctx); routesAfter != routesBefore {
		t.Errorf("failed vpn up changed the laptop's routing:\n--- before\n%s\n--- after\n%s", routesBefore, routesAfter)
	}
	if _, err := alice.TunnelAddrs(ctx); err == nil {
		t.Errorf("failed vpn up left interface %s behind", alice.Iface)
	}
	if after := e.allPeers(t); !slices.Equal(after, peersBefore) {
		t.Errorf("failed vpn up created peers: %v", after)
	}

	// The control: the same request with a good token is accepted, so the
	// refusals above are about the tokens.
	if code, _, raw := register(t, e, good); code != http.StatusOK {
		t.Errorf("good token: got %d %s, want 200", code, raw)
	}
	if after := e.allPeers(t); len(after) != 1 {
		t.Errorf("after one good registration the gateway has peers %v", after)
	}
}

// allPeers lists the peers on both gateway interfaces, as `wg show` does.
func (e *env) allPeers(t *testing.T) []string {
	t.Helper()
	var all []string
	for _, iface := range []string{e.EngIface, e.OpsIface} {
		p, err := e.Peers(context.Background(), iface)
		if err != nil {
			t.Fatalf("wg show %s peers: %v", iface, err)
		}
		all = append(all, p...)
	}
	slices.Sort(all)
	return all
}
