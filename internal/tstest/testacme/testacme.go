// Package testacme runs Pebble, Let's Encrypt's ACME test server (pinned in
// tools/pebble), for tests of the gateway's ACME path: it builds the
// binary, writes its configuration and answers its DNS questions, so that
// Pebble validates challenges against the gateway for real.
package testacme

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

var build struct {
	once sync.Once
	bin  string
	err  error
}

// Binary builds tools/pebble once per process and returns its path.
func Binary() (string, error) {
	build.once.Do(func() {
		root, err := lab.RepoRoot()
		if err != nil {
			build.err = err
			return
		}
		dir, err := os.MkdirTemp("", "clearpath-pebble-")
		if err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(dir, "pebble")
		cmd := exec.Command("go", "build", "-o", build.bin, "github.com/letsencrypt/pebble/v2/cmd/pebble")
		cmd.Dir = filepath.Join(root, "tools", "pebble")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("build pebble (tools/pebble): %v\n%s", err, out)
		}
	})
	return build.bin, build.err
}

// Config is what a Pebble instance needs.
type Config struct {
	Listen, Management string // host:port of the ACME and management APIs
	CertFile, KeyFile  string // Pebble's own listener certificate
	HTTPPort, TLSPort  int    // where it validates HTTP-01 and TLS-ALPN-01
}

// Write writes Pebble's JSON configuration to path.
func (c Config) Write(path string) error {
	b, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": c.Listen, "managementListenAddress": c.Management,
		"certificate": c.CertFile, "privateKey": c.KeyFile,
		"httpPort": c.HTTPPort, "tlsPort": c.TLSPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	return os.WriteFile(path, b, 0o600)
}

// Env is the environment Pebble runs with in tests: no random validation
// sleeps, no deliberately rejected nonces.
var Env = []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}

// Args are Pebble's arguments for config file cfg and DNS server dns.
func Args(cfg, dns string) []string { return []string{"-config", cfg, "-dnsserver", dns} }

// ServeDNS answers DNS over TCP on ln (Pebble asks its -dnsserver over
// TCP): every A question with a, every other with no records. It returns
// when ln is closed.
func ServeDNS(ln net.Listener, a netip.Addr) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(conn, l[:]); err != nil {
					return
				}
				buf := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(conn, buf); err != nil {
					return
				}
				msg, err := answer(buf, a)
				if err != nil {
					return
				}
				conn.Write(binary.BigEndian.AppendUint16(nil, uint16(len(msg))))
				conn.Write(msg)
			}
		}()
	}
}

func answer(query []byte, a netip.Addr) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if q.Type == dnsmessage.TypeA && a.Is4() {
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a.As4()})
	}
	return b.Finish()
}
