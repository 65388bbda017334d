package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/tunnel"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/server/api"
)

func subjectOf(t *testing.T, idToken string) string {
	t.Helper()
	c, err := dex.Claims(idToken)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := c["sub"].(string)
	return sub
}

// A registration must prove the device key and be fresh: a replayed body
// (also after a gateway restart), one sealed with a key the client does
// not hold, one bound to another subject or network, a stale one and an
// unsealed one are refused and change nothing on the WireGuard device. A
// leaked device key without the session key gets no handshake, and the
// session key of an ended session is worth nothing.
func TestRegistrationProofIsChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	aliceTok, err := e.Dex.Login(ctx, dex.ClientID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := e.Dex.Login(ctx, dex.ClientID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	alice := aliceTok.IDToken
	sub := subjectOf(t, alice)
	eng, ops := e.networkKey(t, e.EngIface), e.networkKey(t, e.OpsIface)
	hc := e.Laptop.HTTPClient(10 * time.Second)
	post := func(token string, req api.RegisterRequest) (int, api.Error, *api.PeerConfig) {
		code, apiErr, _, pc := postRegistration(t, hc, stack.ServerURL, token, req)
		return code, apiErr, pc
	}

	devKey, _ := wgtypes.GeneratePrivateKey()
	claims := api.RegisterClaims{Subject: sub, Network: "eng", DeviceID: "proof-laptop", Hostname: "laptop", OS: "linux"}
	good := sealFor(t, eng, claims, devKey)
	code, apiErr, pc := post(alice, good)
	if code != http.StatusOK {
		t.Fatalf("a good registration: %d %+v", code, apiErr)
	}
	psk1, err := api.OpenSecret(*pc.Session, devKey, eng)
	if err != nil {
		t.Fatalf("session key: %v", err)
	}
	pub := devKey.PublicKey().String()
	wantPeer := wgPeer{psk: wgtypes.Key(psk1).String(), allowedIPs: strings.Join(pc.Addresses, ",")}
	if got := wgDump(t, e.GW, e.EngIface); len(got) != 1 || got[pub] != wantPeer {
		t.Fatalf("gateway device after one registration: %+v, want %s %+v", got, pub, wantPeer)
	}

	mallory, _ := wgtypes.GeneratePrivateKey()
	forged := sealFor(t, eng, claims, mallory)
	forged.PublicKey = pub // claims alice's device key, sealed with another
	otherSubject := claims
	otherSubject.Subject = subjectOf(t, bobTok.IDToken)
	otherNetwork := claims
	otherNetwork.Network = "ops"
	wrongNet := sealFor(t, eng, otherNetwork, devKey)
	wrongNet.Network = "eng"
	stale := claims
	stale.IssuedAt = time.Now().Add(-10 * time.Minute).Unix()
	toOps := sealFor(t, ops, claims, devKey)
	toOps.Network = "eng"
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))
	lowOrder := good
	lowOrder.PublicKey = zero

	for _, tc := range []struct {
		name, token string
		req         api.RegisterRequest
		code        int
		says        string
	}{
		{"replayed", alice, good, 401, "replayed"},
		{"sealed with a key the client does not hold", alice, forged, 401, "not sealed by the private key"},
		{"bound to another subject", alice, sealFor(t, eng, otherSubject, devKey), 401, "sealed for subject"},
		{"alice's body with bob's token", bobTok.IDToken, sealFor(t, eng, claims, devKey), 401, "sealed for subject"},
		{"bound to another network", alice, wrongNet, 401, "sealed for network"},
		{"sealed to another network's key", alice, toOps, 401, "not sealed"},
		{"stale", alice, sealFor(t, eng, stale, devKey), 401, "more than"},
		{"not sealed at all", alice, api.RegisterRequest{PublicKey: pub}, 400, "sealed"},
		{"a low-order public key", alice, lowOrder, 400, "low-order"},
	} {
		code, apiErr, _ := post(tc.token, tc.req)
		if code != tc.code || !strings.Contains(apiErr.Message, tc.says) {
			t.Errorf("%s: %d %+v, want %d saying %q", tc.name, code, apiErr, tc.code, tc.says)
		} else {
			t.Logf("%s: %d %s: %s", tc.name, code, apiErr.Error, apiErr.Message)
		}
	}
	if got := wgDump(t, e.GW, e.EngIface); len(got) != 1 || got[pub] != wantPeer {
		t.Errorf("refused registrations changed the device: %+v", got)
	}
	if got := wgDump(t, e.GW, e.OpsIface); len(got) != 0 {
		t.Errorf("refused registrations added peers to ops: %+v", got)
	}

	// Nonces outlive a restart: the store keeps them.
	if err := e.StopGateway(); err != nil {
		t.Fatal(err)
	}
	if err := e.StartGateway(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if code, apiErr, _ := post(alice, good); code != 401 || !strings.Contains(apiErr.Message, "replayed") {
		t.Errorf("replayed after a gateway restart: %d %+v", code, apiErr)
	}

	// The key and the session key together get in (the control)...
	ep := netip.AddrPortFrom(netip.MustParseAddr(lab.GWPublicIP4), lab.EngPort)
	if err := rogueTunnel(t, e, devKey, psk1, eng, ep, pc.Addresses[0], true); err != nil {
		t.Fatalf("the device's own key and session key: %v", err)
	}
	// ...the key alone does not,
	if err := rogueTunnel(t, e, devKey, wgtypes.Key{}, eng, ep, pc.Addresses[0], false); err == nil {
		t.Error("the device key without the session key got through")
	}
	// and once the device renewed, the old session key is worth nothing.
	code, apiErr, pc2 := post(alice, sealFor(t, eng, claims, devKey))
	if code != 200 || strings.Join(pc2.Addresses, ",") != wantPeer.allowedIPs {
		t.Fatalf("renewal: %d %+v %v", code, apiErr, pc2)
	}
	psk2, _ := api.OpenSecret(*pc2.Session, devKey, eng)
	if psk2 == psk1 {
		t.Fatal("the renewal kept the session key")
	}
	if err := rogueTunnel(t, e, devKey, psk1, eng, ep, pc.Addresses[0], false); err == nil {
		t.Error("the key with the ended session's key got through")
	}
	if err := rogueTunnel(t, e, devKey, psk2, eng, ep, pc.Addresses[0], true); err != nil {
		t.Errorf("the key with the new session key: %v", err)
	}
}

// rogueTunnel brings up a WireGuard tunnel on the laptop with the given
// credentials, outside the vpn agent (as someone holding a copy of them
// would), and pings the gateway's tunnel address through it for long enough
// for two handshake attempts (WireGuard retries after 5 s). The tunnel runs
// in a helper process inside the laptop's namespace: wireguard-go reopens
// its sockets on link events from any thread, so it must not run in this
// process, whose other threads are in the machine's own namespace.
func rogueTunnel(t *testing.T, e *env, priv, psk wgtypes.Key, gw api.Key, ep netip.AddrPort, addr string, wantThrough bool) error {
	t.Helper()
	name := e.Prefix + "rg"
	cfg, _ := json.Marshal(rogueConfig{Interface: name, PrivateKey: priv.String(), PresharedKey: psk.String(), PeerKey: base64.StdEncoding.EncodeToString(gw[:]),
		Endpoint: ep.String(), Address: addr})
	p, err := e.Laptop.StartEnv(fmt.Sprint("rogue-", rogues.Add(1)), []string{rogueEnv + "=" + string(cfg)}, os.Args[0], "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Log(), "ROGUE READY "+name); {
		if done, _ := p.Exited(); done || time.Now().After(deadline) {
			t.Fatalf("rogue tunnel did not come up:\n%s", p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.Laptop.IP("route", "replace", "100.64.0.1/32", "dev", name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 11*time.Second)
	defer cancel()
	_, err = e.Laptop.Ping(ctx, "100.64.0.1")
	if err != nil && wantThrough {
		o1, _ := e.Laptop.Exec(context.Background(), "wg", "show", name)
		o2, _ := e.GW.Exec(context.Background(), "wg", "show", e.EngIface)
		t.Logf("rogue tunnel without reply:\n%s\n%s", o1, o2)
	}
	return err
}

const rogueEnv = "CLEARPATH_E2E_ROGUE_TUNNEL"

var rogues atomic.Int32 // names each helper's log

type rogueConfig struct {
	Interface, PrivateKey, PresharedKey, PeerKey, Endpoint, Address string
}

// runRogueTunnel is the helper process of rogueTunnel: it holds the tunnel
// until SIGTERM.
func runRogueTunnel() int {
	var c rogueConfig
	if err := json.Unmarshal([]byte(os.Getenv(rogueEnv)), &c); err != nil {
		fmt.Println("rogue:", err)
		return 1
	}
	priv, err1 := wgtypes.ParseKey(c.PrivateKey)
	psk, err2 := wgtypes.ParseKey(c.PresharedKey)
	peer, err3 := wgtypes.ParseKey(c.PeerKey)
	ep, err4 := netip.ParseAddrPort(c.Endpoint)
	addr, err5 := netip.ParsePrefix(c.Address)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		fmt.Println("rogue:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	tun, err := tunnel.Up(tunnel.Config{Interface: c.Interface, MTU: 1420, PrivateKey: priv, PresharedKey: psk, PeerKey: peer, Endpoint: ep,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}, Addresses: []netip.Prefix{addr}}, log)
	if err != nil {
		fmt.Println("rogue:", err)
		return 1
	}
	defer tun.Close()
	fmt.Println("ROGUE READY", c.Interface)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	return 0
}
