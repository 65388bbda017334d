package wgdev

import "testing"

func TestEndpointResets(t *testing.T) {
	get := "private_key=aa\nlisten_port=51820\n" +
		"public_key=11\nendpoint=192.0.2.7:51820\nallowed_ip=10.0.0.2/32\nrx_bytes=5\n" +
		"public_key=22\nallowed_ip=10.0.0.3/32\n" +
		"public_key=33\nendpoint=[2001:db8::9]:4500\n"
	want := "public_key=11\nendpoint=192.0.2.7:51820\npublic_key=33\nendpoint=[2001:db8::9]:4500\n"
	if got := endpointResets(get); got != want {
		t.Fatalf("endpointResets:\n%s\nwant:\n%s", got, want)
	}
	if got := endpointResets("private_key=aa\nlisten_port=1\n"); got != "" {
		t.Fatalf("no peers: %q", got)
	}
}
