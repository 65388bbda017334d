package wgdev

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

func TestEndpointResets(t *testing.T) {
	get := "private_key=aa\nlisten_port=51820\n" +
		"public_key=11\nendpoint=192.0.2.7:51820\nallowed_ip=10.0.0.2/32\nrx_bytes=5\n" +
		"public_key=22\nallowed_ip=10.0.0.3/32\n" +
		"public_key=33\nendpoint=[2001:db8::9]:4500\n"
	want := "public_key=11\nupdate_only=true\nendpoint=192.0.2.7:51820\npublic_key=33\nupdate_only=true\nendpoint=[2001:db8::9]:4500\n"
	if got := endpointResets(get); got != want {
		t.Fatalf("endpointResets:\n%s\nwant:\n%s", got, want)
	}
	if got := endpointResets("private_key=aa\nlisten_port=1\n"); got != "" {
		t.Fatalf("no peers: %q", got)
	}
}

// TestEndpointResetKeepsRemovedPeersRemoved: the reset is computed from a
// read of the device; a peer the gateway removes (revokes) between that read
// and the write must stay removed, and the others keep their endpoints.
func TestEndpointResetKeepsRemovedPeersRemoved(t *testing.T) {
	lab.SkipUnlessRoot(t)
	l := lab.NewT(t, lab.Options{})
	n, err := l.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	k := func() wgtypes.Key { k, _ := wgtypes.GeneratePrivateKey(); return k }
	priv, kept, revoked := k(), k().PublicKey(), k().PublicKey()
	var d *Device
	if err := n.Do(func() (err error) {
		d, err = Create(l.Prefix+"wr", 1420, slog.New(slog.DiscardHandler))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Dev.IpcSet(fmt.Sprintf("private_key=%x\npublic_key=%x\nendpoint=192.0.2.9:51820\nallowed_ip=10.0.0.2/32\npublic_key=%x\nendpoint=192.0.2.10:51820\nallowed_ip=10.0.0.3/32\n",
		priv[:], kept[:], revoked[:])); err != nil {
		t.Fatal(err)
	}
	read, err := d.Dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Dev.IpcSet(fmt.Sprintf("public_key=%x\nremove=true\n", revoked[:])); err != nil {
		t.Fatal(err)
	}
	if err := d.Dev.IpcSet(endpointResets(read)); err != nil {
		t.Fatal(err)
	}
	after, _ := d.Dev.IpcGet()
	if strings.Contains(after, fmt.Sprintf("public_key=%x", revoked[:])) {
		t.Fatalf("the removed peer is back:\n%s", after)
	}
	if want := endpointResets(fmt.Sprintf("public_key=%x\nendpoint=192.0.2.9:51820\n", kept[:])); endpointResets(after) != want {
		t.Fatalf("the other peer lost its endpoint:\n%s", after)
	}
}
