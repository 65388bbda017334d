// Package deploy holds the gateway's container image (docker/) and an
// example compose stack (compose/); its tests check they agree with the
// program and with the systemd unit.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/clearpath-vpn/clearpath/server/config"
)

type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		CapDrop []string `yaml:"cap_drop"`
		CapAdd  []string `yaml:"cap_add"`
		Devices []string `yaml:"devices"`
		Sysctls map[string]string
		Volumes []string `yaml:"volumes"`
		Ports   []string `yaml:"ports"`
	} `yaml:"services"`
	Networks map[string]struct {
		Internal bool `yaml:"internal"`
		IPAM     struct {
			Config []struct{ Subnet string } `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The stack's pieces fit: the gateway's config passes the gateway's own
// check, names Dex's issuer and client, allows the private network, uses
// the PostgreSQL service; the container gets exactly the systemd unit's
// capabilities, the TUN device and forwarding; the image's health check
// asks the port the config listens on.
func TestComposeStackFitsTogether(t *testing.T) {
	cfg, err := config.Load("compose/gateway.yaml")
	if err != nil {
		t.Fatalf("vpn-gateway check compose/gateway.yaml: %v", err)
	}
	var c composeFile
	readYAML(t, "compose/compose.yaml", &c)
	var dex struct {
		Issuer        string `yaml:"issuer"`
		StaticClients []struct {
			ID     string `yaml:"id"`
			Public bool   `yaml:"public"`
		} `yaml:"staticClients"`
	}
	readYAML(t, "compose/dex.yaml", &dex)
	if cfg.OIDC.Issuer != dex.Issuer {
		t.Errorf("gateway issuer %q, Dex serves %q", cfg.OIDC.Issuer, dex.Issuer)
	}
	if !slices.ContainsFunc(dex.StaticClients, func(cl struct {
		ID     string `yaml:"id"`
		Public bool   `yaml:"public"`
	}) bool {
		return cl.ID == cfg.OIDC.ClientID && cl.Public
	}) {
		t.Errorf("Dex has no public client %q", cfg.OIDC.ClientID)
	}
	if !strings.Contains(cfg.Store, "@postgres:5432/") {
		t.Errorf("store %q is not the compose PostgreSQL", cfg.Store)
	}
	vpc := c.Networks["vpc"]
	if !vpc.Internal || len(vpc.IPAM.Config) != 1 || len(cfg.Networks) != 1 || len(cfg.Networks[0].Allow) != 1 || cfg.Networks[0].Allow[0].String() != vpc.IPAM.Config[0].Subnet {
		t.Errorf("the private network %+v is not internal or not what the gateway allows (%v)", vpc, cfg.Networks[0].Allow)
	}

	gw := c.Services["gateway"]
	unit, err := os.ReadFile("../packaging/systemd/clearpath-gateway.service")
	if err != nil {
		t.Fatal(err)
	}
	var unitCaps []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "CapabilityBoundingSet="); ok {
			for _, c := range strings.Fields(v) {
				unitCaps = append(unitCaps, strings.TrimPrefix(c, "CAP_"))
			}
		}
	}
	if !slices.Equal(gw.CapDrop, []string{"ALL"}) || !slices.Equal(gw.CapAdd, unitCaps) || len(unitCaps) != 4 {
		t.Errorf("gateway container caps drop %v add %v; want drop ALL, add the unit's %v", gw.CapDrop, gw.CapAdd, unitCaps)
	}
	if !slices.Contains(gw.Devices, "/dev/net/tun:/dev/net/tun") || gw.Sysctls["net.ipv4.ip_forward"] != "1" || gw.Sysctls["net.ipv6.conf.all.forwarding"] != "1" {
		t.Errorf("gateway container lacks the TUN device or forwarding: %v %v", gw.Devices, gw.Sysctls)
	}
	port := cfg.Listen[strings.LastIndex(cfg.Listen, ":")+1:]
	if !slices.Contains(gw.Ports, port+":"+port+"/tcp") {
		t.Errorf("API port %s not published: %v", port, gw.Ports)
	}
	df, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// The health check asks the loopback metrics listener (plain http
	// whether or not the API serves TLS): the config must keep it on.
	if !strings.Contains(string(df), `CMD ["/usr/bin/vpn-gateway", "health"]`) || !strings.Contains(string(df), "FROM scratch") {
		t.Errorf("Dockerfile: want FROM scratch and a HEALTHCHECK running vpn-gateway health")
	}
	if cfg.MetricsAddr() != config.DefaultMetricsListen {
		t.Errorf("compose gateway.yaml: metrics_listen %q; the image's health check asks %s", cfg.MetricsAddr(), config.DefaultMetricsListen)
	}
}

// docker-compose (Debian's 1.29) or podman-compose parses the stack; no
// container runs: there is no daemon and no registry here.
func TestComposeConfigValidates(t *testing.T) {
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose not installed (apt-get install -y docker-compose): compose.yaml not validated by compose itself")
	}
	out, err := exec.Command(dc, "-f", filepath.Join("compose", "compose.yaml"), "config", "--quiet").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("docker-compose config: %v\n%s", err, out)
	}
	// And it can fail: a service key compose does not know.
	bad := filepath.Join(t.TempDir(), "compose.yaml")
	b, _ := os.ReadFile(filepath.Join("compose", "compose.yaml"))
	os.WriteFile(bad, []byte(strings.Replace(string(b), "cap_drop:", "cap_dorp:", 1)), 0o644)
	if out, err := exec.Command(dc, "-f", bad, "config", "--quiet").CombinedOutput(); err == nil {
		t.Errorf("docker-compose accepted cap_dorp:\n%s", out)
	}
}
