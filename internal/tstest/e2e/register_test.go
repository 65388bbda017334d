package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// networkKey reads a gateway interface's public key with `wg show`.
func (e *env) networkKey(t *testing.T, iface string) api.Key {
	t.Helper()
	return wgPublicKey(t, e.GW, iface)
}

func wgPublicKey(t *testing.T, node *lab.Node, iface string) api.Key {
	t.Helper()
	out, err := node.Exec(context.Background(), "wg", "show", iface, "public-key")
	if err != nil {
		t.Fatalf("wg show %s public-key: %v\n%s", iface, err, out)
	}
	k, err := api.ParseKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("wg show %s public-key: %q: %v", iface, out, err)
	}
	return k
}

// sealFor seals claims (IssuedAt defaults to now) with key to netPub.
func sealFor(t testing.TB, netPub api.Key, c api.RegisterClaims, key wgtypes.Key) api.RegisterRequest {
	t.Helper()
	if c.IssuedAt == 0 {
		c.IssuedAt = time.Now().Unix()
	}
	req, err := api.SealRegistration(c, c.Network, key, netPub)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// postRegistration sends req with token through hc and returns the
// status, the error body (non-200), the raw answer and the peer config
// (200).
func postRegistration(t testing.TB, hc *http.Client, server, token string, req api.RegisterRequest) (int, api.Error, []byte, *api.PeerConfig) {
	t.Helper()
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, server+api.PathPeers, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		t.Fatalf("POST %s: %v", api.PathPeers, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var apiErr api.Error
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(raw, &apiErr); err != nil || apiErr.Error == "" || apiErr.Message == "" {
			t.Errorf("error answer %d is not JSON {error, message}: %q", resp.StatusCode, raw)
		}
		return resp.StatusCode, apiErr, raw, nil
	}
	var pc api.PeerConfig
	if err := json.Unmarshal(raw, &pc); err != nil {
		t.Errorf("answer is not a peer config: %q", raw)
	}
	return resp.StatusCode, apiErr, raw, &pc
}
